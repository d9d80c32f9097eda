//go:build cgo

package pkcs11_test

import (
	"cmp"
	"context"
	"crypto"
	"crypto/ed25519"
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	p11 "github.com/miekg/pkcs11"

	"github.com/signerd/signerd/internal/errdefs"
	"github.com/signerd/signerd/internal/keystore"
	"github.com/signerd/signerd/internal/keystore/pkcs11"
	"github.com/signerd/signerd/internal/testutil/softhsm"
)

// The tests here reach the token through the project's forwarding module
// (softhsm.Token.Forwarder), which changes one behaviour of SoftHSM2's
// library at a time to show what real HSMs do and SoftHSM2 does not.

const cryptoSHA256 = crypto.SHA256

type cryptoSignerRef struct {
	ref    keystore.KeyRef
	signer crypto.Signer
}

// lockedBuilder is a strings.Builder safe for the logger's goroutines.
type lockedBuilder struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *lockedBuilder) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuilder) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// newTestLogger logs to the test's output and to w.
func newTestLogger(t *testing.T, w io.Writer) *slog.Logger {
	return slog.New(slog.NewTextHandler(io.MultiWriter(t.Output(), w), nil))
}

// forwarded returns a config for tok through the forwarder with settings,
// and the path of the forwarder's call log.
func forwarded(t *testing.T, tok *softhsm.Token, settings map[string]string) (pkcs11.Config, string) {
	t.Helper()
	logPath := filepath.Join(t.TempDir(), "calls.log")
	if settings == nil {
		settings = map[string]string{}
	}
	settings["LOG"] = logPath
	cfg := config(t, tok)
	cfg.ModulePath = tok.Forwarder(t, settings)
	return cfg, logPath
}

// calls counts the forwarder's log lines that start with prefix.
func calls(t *testing.T, logPath, prefix string) int {
	t.Helper()
	b, err := os.ReadFile(logPath)
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	n := 0
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, prefix) {
			n++
		}
	}
	return n
}

// Two KeyStores and a raw use share one initialisation, and the library
// is finalized once, when the last closes — whether the module refuses a
// second C_Initialize (SoftHSM2, forwarded as is) or counts it (p11-kit's
// client) or needs CKF_OS_LOCKING_OK.
func TestInitialisedOnce(t *testing.T) {
	for _, mode := range []string{"", "count", "needlock"} {
		t.Run("init-"+cmp.Or(mode, "forwarded"), func(t *testing.T) {
			tok := softhsm.NewToken(t)
			cfg, logPath := forwarded(t, tok, map[string]string{"INIT": mode})
			ctx := context.Background()
			a, err := pkcs11.Open(ctx, cfg)
			if err != nil {
				t.Fatalf("Open: %v", err)
			}
			ref, s := createKey(t, a, keystore.ECDSAP256)
			b, err := pkcs11.Open(ctx, cfg)
			if err != nil {
				t.Fatalf("second Open: %v", err)
			}
			if _, err := pkcs11.InspectPrivateKey(cfg.ModulePath, tok.Label, tok.PIN, ref.ID); err != nil {
				t.Fatalf("InspectPrivateKey while open: %v", err)
			}
			if err := a.Close(); err != nil {
				t.Fatal(err)
			}
			sb, err := b.Signer(ctx, ref)
			if err != nil {
				t.Fatalf("Signer after the first Close: %v", err)
			}
			sign(t, sb, ref.Algorithm, []byte("after the first close"))
			if n := calls(t, logPath, "C_Finalize"); n != 0 {
				t.Fatalf("C_Finalize called %d times while a store is open", n)
			}
			if err := b.Close(); err != nil {
				t.Fatal(err)
			}
			if in, fin := calls(t, logPath, "C_Initialize"), calls(t, logPath, "C_Finalize"); in != 1 || fin != 1 {
				t.Fatalf("C_Initialize %d times, C_Finalize %d times, want once each", in, fin)
			}
			if n := calls(t, logPath, "C_Initialize 0x0 flags=0x2"); n != 1 {
				t.Fatalf("C_Initialize without CKF_OS_LOCKING_OK (0x2): %d OK calls with it", n)
			}
			// The signer of the closed store fails cleanly; a raw use alone
			// initialises and finalizes once more.
			if _, err := s.Sign(nil, make([]byte, 32), cryptoSHA256); !errors.Is(err, errdefs.ErrUnavailable) {
				t.Fatalf("Sign after Close: %v", err)
			}
			if _, err := pkcs11.InspectPrivateKey(cfg.ModulePath, tok.Label, tok.PIN, ref.ID); err != nil {
				t.Fatalf("InspectPrivateKey with no store open: %v", err)
			}
			if in, fin := calls(t, logPath, "C_Initialize"), calls(t, logPath, "C_Finalize"); in != 2 || fin != 2 {
				t.Fatalf("after a raw use: C_Initialize %d times, C_Finalize %d times, want twice each", in, fin)
			}
		})
	}
}

// A module that cannot lock is refused with a message that says so.
func TestModuleThatCannotLock(t *testing.T) {
	tok := softhsm.NewToken(t)
	cfg, _ := forwarded(t, tok, map[string]string{"INIT": "cantlock"})
	ks, err := pkcs11.Open(context.Background(), cfg)
	if err == nil {
		ks.Close()
		t.Fatal("Open succeeded on a module that cannot lock")
	}
	if !errors.Is(err, errdefs.ErrInvalidArgument) || !strings.Contains(err.Error(), "CKR_CANT_LOCK") {
		t.Fatalf("Open: %v, want ErrInvalidArgument naming CKR_CANT_LOCK", err)
	}
}

// A token without CKM_EDDSA refuses Ed25519 with a message saying what to
// use, and serves ECDSA.
func TestTokenWithoutEdDSA(t *testing.T) {
	tok := softhsm.NewToken(t)
	// An Ed25519 key made while the token offered CKM_EDDSA.
	plain := open(t, tok)
	edRef, _ := createKey(t, plain, keystore.Ed25519)
	if err := plain.Close(); err != nil {
		t.Fatal(err)
	}

	cfg, _ := forwarded(t, tok, map[string]string{"HIDE_EDDSA": "1"})
	ks, err := pkcs11.Open(context.Background(), cfg)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	defer ks.Close()
	ctx := context.Background()
	const want = "this HSM offers no CKM_EDDSA; use ecdsa-p256"
	_, err = ks.CreateKey(ctx, keystore.CreateKeyRequest{ID: newID(t), Label: "ed", Algorithm: keystore.Ed25519})
	if !errors.Is(err, errdefs.ErrFailedPrecondition) || !strings.Contains(err.Error(), want) {
		t.Fatalf("CreateKey(ed25519): %v, want FailedPrecondition %q", err, want)
	}
	if _, err := ks.Signer(ctx, edRef); !errors.Is(err, errdefs.ErrFailedPrecondition) || !strings.Contains(err.Error(), want) {
		t.Fatalf("Signer(ed25519): %v, want FailedPrecondition %q", err, want)
	}
	ref, s := createKey(t, ks, keystore.ECDSAP256)
	sig := sign(t, s, ref.Algorithm, []byte("ecdsa still served"))
	in, _ := message(ref.Algorithm, []byte("ecdsa still served"))
	opensslVerify(t, ref.Public, ref.Algorithm, in, sig)
}

// Optional functions answering CKR_FUNCTION_NOT_SUPPORTED do not stop the
// store: both algorithms still work.
func TestOptionalFunctionsNotSupported(t *testing.T) {
	for _, fn := range []string{"C_GetMechanismList", "C_GetMechanismInfo"} {
		t.Run(fn, func(t *testing.T) {
			tok := softhsm.NewToken(t)
			cfg, _ := forwarded(t, tok, map[string]string{"UNSUPPORTED": fn})
			ks, err := pkcs11.Open(context.Background(), cfg)
			if err != nil {
				t.Fatalf("Open: %v", err)
			}
			defer ks.Close()
			for _, alg := range algorithms {
				ref, s := createKey(t, ks, alg)
				sign(t, s, ref.Algorithm, []byte("without "+fn))
			}
		})
	}
}

// signFromMany signs with n goroutines, each signing rounds times, and
// returns the number of failures (each is reported).
func signFromMany(t *testing.T, s []cryptoSignerRef, n, rounds int) int {
	t.Helper()
	var (
		wg     sync.WaitGroup
		mu     sync.Mutex
		failed int
	)
	for g := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for r := range rounds {
				k := s[(g+r)%len(s)]
				in, opts := message(k.ref.Algorithm, []byte("concurrent"))
				sig, err := k.signer.Sign(nil, in, opts)
				if err == nil && !verify(k.ref.Public, k.ref.Algorithm, in, sig) {
					err = errors.New("signature does not verify")
				}
				if err != nil {
					mu.Lock()
					failed++
					mu.Unlock()
					t.Errorf("goroutine %d round %d: %v", g, r, err)
				}
			}
		}()
	}
	wg.Wait()
	return failed
}

// A token that allows fewer sessions than asked gets a smaller pool, and
// one that refuses a session (CKR_SESSION_COUNT) shrinks the pool: in
// both, many concurrent signers all succeed. The pool opens a session
// only when none is idle, so the refusal needs more than 3 signers in the
// token at once: each signing call is held 2 ms (DELAY_MS), or on a busy
// machine 16 goroutines may take turns on 3 sessions and never ask for a
// fourth (seen in CI).
func TestFewerSessionsThanAsked(t *testing.T) {
	for _, tt := range []struct {
		name     string
		settings map[string]string
		want     string // in the log
	}{
		{"reported max 2", map[string]string{"MAX_SESSIONS": "2"}, "sessions_pooled=2"},
		{"refused after 3", map[string]string{"SESSION_LIMIT": "3", "DELAY_MS": "2"}, "CKR_SESSION_COUNT"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			tok := softhsm.NewToken(t)
			cfg, logPath := forwarded(t, tok, tt.settings)
			var logs lockedBuilder
			cfg.Logger = newTestLogger(t, &logs)
			cfg.MaxSessions = 8
			ks, err := pkcs11.Open(context.Background(), cfg)
			if err != nil {
				t.Fatalf("Open: %v", err)
			}
			defer ks.Close()
			var keys []cryptoSignerRef
			for _, alg := range algorithms {
				ref, s := createKey(t, ks, alg)
				keys = append(keys, cryptoSignerRef{ref, s})
			}
			if failed := signFromMany(t, keys, 16, 20); failed != 0 {
				t.Fatalf("%d of %d signatures failed", failed, 16*20)
			}
			if !strings.Contains(logs.String(), tt.want) {
				t.Fatalf("log does not mention %q:\n%s", tt.want, logs.String())
			}
			if _, ok := tt.settings["SESSION_LIMIT"]; ok && calls(t, logPath, "C_OpenSession 0xb1") == 0 {
				t.Fatal("the token never refused a session: the test tested nothing")
			}
		})
	}
}

// Keys with CKA_ALWAYS_AUTHENTICATE need the PIN again (CKU_CONTEXT_SPECIFIC)
// after each C_SignInit; SoftHSM2 enforces it.
func TestAlwaysAuthenticateKeys(t *testing.T) {
	tok := softhsm.NewToken(t)
	cfg, logPath := forwarded(t, tok, map[string]string{"ALWAYS_AUTH": "1"})
	ks, err := pkcs11.Open(context.Background(), cfg)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	defer ks.Close()
	for _, alg := range algorithms {
		ref, s := createKey(t, ks, alg)
		before := calls(t, logPath, "C_Login user=2 0x0")
		for i := range 3 {
			sig := sign(t, s, ref.Algorithm, []byte{byte(i)})
			in, _ := message(ref.Algorithm, []byte{byte(i)})
			opensslVerify(t, ref.Public, ref.Algorithm, in, sig)
		}
		if n := calls(t, logPath, "C_Login user=2 0x0") - before; n != 3 {
			t.Fatalf("%s: %d context-specific logins for 3 signatures", alg, n)
		}
	}
	// The forwarder really made such keys: the attribute is set.
	if n := calls(t, logPath, "C_Login user=2 0x0"); n == 0 {
		t.Fatal("no context-specific login at all")
	}
}

// An older module that does not know CKA_COPYABLE (PKCS#11 2.40), or not
// even CKA_MODIFIABLE, refuses a template holding it — with
// CKR_ATTRIBUTE_TYPE_INVALID, or CKR_TEMPLATE_INCONSISTENT as some HSMs
// answer: keys are still made, generated and imported, without what it
// refuses and with everything else, and the daemon says which protection
// is missing. A refusal of something else (here CKA_EC_PARAMS) is not
// taken for one of those: the key is not made, nothing is said about
// protections, and the error is the module's first answer.
func TestOlderModuleKeys(t *testing.T) {
	for _, tt := range []struct {
		name, unknown, rv string
		dropped           []string
		modifiable        bool
		fails             bool
	}{
		{name: "copyable", unknown: "0x171", dropped: []string{"CKA_COPYABLE"}},
		{name: "copyable-inconsistent", unknown: "0x171", rv: "0xD1", dropped: []string{"CKA_COPYABLE"}},
		{name: "both", unknown: "0x171,0x170", dropped: []string{"CKA_COPYABLE", "CKA_MODIFIABLE"}, modifiable: true},
		{name: "other", unknown: "0x180", fails: true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			tok := softhsm.NewToken(t)
			cfg, _ := forwarded(t, tok, map[string]string{"UNKNOWN_ATTRS": tt.unknown, "UNKNOWN_ATTRS_RV": tt.rv})
			var logged lockedBuilder
			cfg.Logger = newTestLogger(t, &logged)
			ks, err := pkcs11.Open(context.Background(), cfg)
			if err != nil {
				t.Fatalf("Open: %v", err)
			}
			defer ks.Close()
			if tt.fails {
				_, err := ks.CreateKey(context.Background(), keystore.CreateKeyRequest{ID: newID(t), Label: "k", Algorithm: keystore.Ed25519})
				if !errors.Is(err, p11.Error(p11.CKR_ATTRIBUTE_TYPE_INVALID)) || strings.Contains(logged.String(), "protection attribute") {
					t.Fatalf("CreateKey through a module refusing CKA_EC_PARAMS: %v; logged:\n%s", err, logged.String())
				}
				return
			}
			var ids [][]byte
			for _, alg := range algorithms {
				ref, s := createKey(t, ks, alg)
				sig := sign(t, s, alg, []byte("older module"))
				in, _ := message(alg, []byte("older module"))
				opensslVerify(t, ref.Public, alg, in, sig)
				ids = append(ids, ref.ID)
			}
			id := newID(t)
			if _, err := ks.ImportKey(context.Background(), keystore.ImportKeyRequest{ID: id, Label: "imported", Algorithm: keystore.Ed25519, Private: ed25519.NewKeyFromSeed(make([]byte, ed25519.SeedSize))}); err != nil {
				t.Fatalf("ImportKey: %v", err)
			}
			ids = append(ids, id)
			for _, id := range ids {
				ka, err := pkcs11.InspectPrivateKey(cfg.ModulePath, tok.Label, tok.PIN, id)
				if err != nil {
					t.Fatal(err)
				}
				if !ka.Sensitive || ka.Extractable || ka.Decrypt || ka.Modifiable != tt.modifiable {
					t.Fatalf("key %x through a module refusing %s: %+v", id, tt.unknown, ka)
				}
			}
			for _, name := range tt.dropped {
				if !strings.Contains(logged.String(), "attribute="+name) {
					t.Fatalf("nothing logged about %s:\n%s", name, logged.String())
				}
			}
		})
	}
}
