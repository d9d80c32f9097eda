//go:build cgo

package supervised_test

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"log/slog"
	"sync/atomic"
	"testing"
	"time"

	p11 "github.com/miekg/pkcs11"

	"github.com/signerd/signerd/internal/errdefs"
	"github.com/signerd/signerd/internal/keystore"
	"github.com/signerd/signerd/internal/keystore/pkcs11"
	"github.com/signerd/signerd/internal/keystore/supervised"
	"github.com/signerd/signerd/internal/testutil/softhsm"
)

// A real SoftHSM2 token whose object store moves away and comes back: the
// supervised store fails fast, reports it, re-initialises the library by
// itself and signs again with the same signers, for both algorithms.
func TestSoftHSMTokenMovesAwayAndBack(t *testing.T) {
	tok := softhsm.NewToken(t)
	ctx := context.Background()
	var reported atomic.Bool // the last health report
	ks, err := supervised.Open(ctx, supervised.Options{
		Open: func(ctx context.Context) (keystore.KeyStore, error) {
			cfg := tok.Config()
			cfg.Logger = slog.New(slog.NewTextHandler(t.Output(), nil))
			return pkcs11.Open(ctx, cfg)
		},
		Name:         tok.Label,
		Logger:       slog.New(slog.NewTextHandler(t.Output(), nil)),
		PingInterval: -1,
		MinBackoff:   5 * time.Millisecond,
		MaxBackoff:   20 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer ks.Close()
	ks.NotifyHealth(reported.Store)

	type key struct {
		ref keystore.KeyRef
		s   crypto.Signer
	}
	var keys []key
	for _, alg := range []keystore.Algorithm{keystore.Ed25519, keystore.ECDSAP256} {
		id := make([]byte, 16)
		rand.Read(id)
		pub, err := ks.CreateKey(ctx, keystore.CreateKeyRequest{ID: id, Label: string(alg), Algorithm: alg})
		if err != nil {
			t.Fatal(err)
		}
		ref := keystore.KeyRef{ID: id, Algorithm: alg, Public: pub}
		s, err := ks.Signer(ctx, ref)
		if err != nil {
			t.Fatal(err)
		}
		keys = append(keys, key{ref, s})
	}
	signAll := func() error {
		for _, k := range keys {
			if err := signOnce(k.ref, k.s); err != nil {
				return err
			}
		}
		return nil
	}
	if err := signAll(); err != nil {
		t.Fatal(err)
	}

	// Each algorithm's path (CKM_ECDSA, CKM_EDDSA) is
	// the first to meet the fault once.
	for _, first := range []int{1, 0} {
		away := tok.MoveAway(t)
		order := []key{keys[first], keys[1-first]}
		for _, k := range order {
			err := signOnce(k.ref, k.s)
			if !errors.Is(err, errdefs.ErrUnavailable) || errdefs.ReasonOf(err) != errdefs.ReasonHSMUnavailable {
				t.Fatalf("%s: Sign with the token gone: %v, want HSM_UNAVAILABLE", k.ref.Algorithm, err)
			}
		}
		if ks.Serving() || reported.Load() {
			t.Fatal("still serving with the token gone")
		}
		// Stays down while the token is away (the loop keeps trying).
		time.Sleep(50 * time.Millisecond)
		if ks.Serving() {
			t.Fatal("came back up without the token")
		}

		away.Restore(t)
		deadline := time.Now().Add(15 * time.Second)
		for !ks.Serving() {
			if time.Now().After(deadline) {
				t.Fatal("did not recover after the token came back")
			}
			time.Sleep(5 * time.Millisecond)
		}
		if !reported.Load() {
			t.Fatal("SERVING not reported after recovery")
		}
		if err := signAll(); err != nil {
			t.Fatalf("Sign after recovery: %v", err)
		}
	}
	for _, k := range keys {
		s, err := ks.Signer(ctx, k.ref)
		if err != nil {
			t.Fatal(err)
		}
		if err := signOnce(k.ref, s); err != nil {
			t.Fatal(err)
		}
	}
}

func signOnce(ref keystore.KeyRef, s crypto.Signer) error {
	msg := make([]byte, 32)
	rand.Read(msg)
	switch ref.Algorithm {
	case keystore.Ed25519:
		sig, err := s.Sign(nil, msg, crypto.Hash(0))
		if err != nil {
			return err
		}
		if !ed25519.Verify(ref.Public.(ed25519.PublicKey), msg, sig) {
			return errors.New("Ed25519 signature does not verify")
		}
	default:
		d := sha256.Sum256(msg)
		sig, err := s.Sign(rand.Reader, d[:], crypto.SHA256)
		if err != nil {
			return err
		}
		if !ecdsa.VerifyASN1(ref.Public.(*ecdsa.PublicKey), d[:], sig) {
			return errors.New("ECDSA signature does not verify")
		}
	}
	return nil
}

// Someone in the process finalizes the library (a crashed or reset
// module): the next call fails fast as unavailable, and the store
// re-initialises the library by itself. The test calls C_Finalize through
// miekg/pkcs11 directly, as foreign code in the process would.
func TestSoftHSMModuleFinalized(t *testing.T) {
	tok := softhsm.NewToken(t)
	ctx := context.Background()
	ks, err := supervised.Open(ctx, supervised.Options{
		Open: func(ctx context.Context) (keystore.KeyStore, error) {
			cfg := tok.Config()
			cfg.Logger = slog.New(slog.NewTextHandler(t.Output(), nil))
			return pkcs11.Open(ctx, cfg)
		},
		Name:         tok.Label,
		Logger:       slog.New(slog.NewTextHandler(t.Output(), nil)),
		PingInterval: -1,
		MinBackoff:   5 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer ks.Close()
	id := make([]byte, 16)
	rand.Read(id)
	pub, err := ks.CreateKey(ctx, keystore.CreateKeyRequest{ID: id, Algorithm: keystore.Ed25519})
	if err != nil {
		t.Fatal(err)
	}
	ref := keystore.KeyRef{ID: id, Algorithm: keystore.Ed25519, Public: pub}
	s, err := ks.Signer(ctx, ref)
	if err != nil {
		t.Fatal(err)
	}
	if err := signOnce(ref, s); err != nil {
		t.Fatal(err)
	}

	lib := p11.New(tok.ModulePath)
	if err := lib.Finalize(); err != nil {
		t.Fatal(err)
	}
	lib.Destroy()
	if err := signOnce(ref, s); !errors.Is(err, errdefs.ErrUnavailable) || errdefs.ReasonOf(err) != errdefs.ReasonHSMUnavailable {
		t.Fatalf("Sign after C_Finalize: %v, want HSM_UNAVAILABLE", err)
	}
	deadline := time.Now().Add(15 * time.Second)
	for !ks.Serving() {
		if time.Now().After(deadline) {
			t.Fatal("did not recover from C_Finalize")
		}
		time.Sleep(5 * time.Millisecond)
	}
	if err := signOnce(ref, s); err != nil {
		t.Fatalf("Sign after recovery: %v", err)
	}
}
