package supervised

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/signerd/signerd/internal/errdefs"
	"github.com/signerd/signerd/internal/keystore"
)

// token is the world a fakeStore lives in: the supervision logic is tested
// here on its own; softhsm_test.go breaks a real SoftHSM2 token.
type token struct {
	mu          sync.Mutex
	present     bool
	pin         string
	keys        map[string]ed25519.PrivateKey
	opens       int // successful opens
	pinAttempts int // logins tried
	calls       atomic.Int64
	closeGate   chan struct{} // if set, Close waits for it: a call stuck in the token
}

func newToken() *token {
	return &token{present: true, pin: "1234", keys: map[string]ed25519.PrivateKey{}}
}

func (tk *token) set(f func(tk *token)) {
	tk.mu.Lock()
	defer tk.mu.Unlock()
	f(tk)
}

// opener logs in with pin, as pkcs11.Open does.
func (tk *token) opener(pin string) Opener {
	return func(context.Context) (keystore.KeyStore, error) {
		tk.mu.Lock()
		defer tk.mu.Unlock()
		if !tk.present {
			return nil, fmt.Errorf("no token labelled %q: %w", "t", errdefs.ErrNotFound)
		}
		tk.pinAttempts++
		if pin != tk.pin {
			return nil, fmt.Errorf("PIN incorrect for token %q: %w", "t", errdefs.ErrPermissionDenied)
		}
		tk.opens++
		return &fakeStore{tk: tk}, nil
	}
}

// fakeStore behaves like pkcs11.KeyStore on SoftHSM2: a vanished token
// makes key lookups find nothing, and Ping fail as unavailable; and like
// SoftHSM2, a store that has seen the token vanish stays broken even if it
// comes back (only a new store, a fresh C_Initialize, sees it).
type fakeStore struct {
	tk     *token
	closed atomic.Bool
	broken bool // guarded by tk.mu
}

func (f *fakeStore) usable() error {
	f.tk.calls.Add(1)
	if f.closed.Load() {
		return fmt.Errorf("key store is closed: %w", errdefs.ErrUnavailable)
	}
	return nil
}

// presentLocked reports whether this store sees the token. tk.mu MUST be
// held.
func (f *fakeStore) presentLocked() bool {
	if !f.tk.present {
		f.broken = true
	}
	return !f.broken
}

func (f *fakeStore) CreateKey(_ context.Context, req keystore.CreateKeyRequest) (crypto.PublicKey, error) {
	if err := f.usable(); err != nil {
		return nil, err
	}
	f.tk.mu.Lock()
	defer f.tk.mu.Unlock()
	if !f.presentLocked() {
		return nil, fmt.Errorf("CKR_GENERAL_ERROR: %w", errdefs.ErrUnavailable)
	}
	pub, priv, _ := ed25519.GenerateKey(rand.Reader)
	f.tk.keys[string(req.ID)] = priv
	return pub, nil
}

func (f *fakeStore) ImportKey(context.Context, keystore.ImportKeyRequest) (crypto.PublicKey, error) {
	return nil, fmt.Errorf("not supported: %w", errdefs.ErrInvalidArgument)
}

func (f *fakeStore) Signer(_ context.Context, ref keystore.KeyRef) (crypto.Signer, error) {
	if err := f.usable(); err != nil {
		return nil, err
	}
	return &fakeSigner{f: f, ref: ref}, nil
}

func (f *fakeStore) Ping(context.Context) error {
	if err := f.usable(); err != nil {
		return err
	}
	f.tk.mu.Lock()
	defer f.tk.mu.Unlock()
	if !f.presentLocked() {
		return fmt.Errorf("CKR_GENERAL_ERROR: %w", errdefs.ErrUnavailable)
	}
	return nil
}

func (f *fakeStore) Close() error {
	f.tk.mu.Lock()
	gate := f.tk.closeGate
	f.tk.mu.Unlock()
	if gate != nil {
		<-gate
	}
	f.closed.Store(true)
	return nil
}

type fakeSigner struct {
	f   *fakeStore
	ref keystore.KeyRef
}

func (s *fakeSigner) Public() crypto.PublicKey { return s.ref.Public }

func (s *fakeSigner) Sign(_ io.Reader, msg []byte, _ crypto.SignerOpts) ([]byte, error) {
	if err := s.f.usable(); err != nil {
		return nil, err
	}
	s.f.tk.mu.Lock()
	defer s.f.tk.mu.Unlock()
	priv, ok := s.f.tk.keys[string(s.ref.ID)]
	if !s.f.presentLocked() || !ok {
		return nil, errdefs.WithReason(errdefs.ReasonKeyNotFound, fmt.Errorf("key %x: %w", s.ref.ID, errdefs.ErrNotFound))
	}
	return ed25519.Sign(priv, msg), nil
}

// health records what the supervisor reports.
type health struct {
	mu      sync.Mutex
	reports []bool
}

func (h *health) set(serving bool) {
	h.mu.Lock()
	h.reports = append(h.reports, serving)
	h.mu.Unlock()
}

func (h *health) last() (bool, int) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(h.reports) == 0 {
		return false, 0
	}
	return h.reports[len(h.reports)-1], len(h.reports)
}

// logBuffer collects the supervisor's log.
type logBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) count(s string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Count(l.b.String(), s)
}

type fixture struct {
	tk  *token
	ks  *KeyStore
	h   *health
	log *logBuffer
	ref keystore.KeyRef
}

func newFixture(t *testing.T, pingInterval time.Duration, mods ...func(*Options)) *fixture {
	t.Helper()
	fx := &fixture{tk: newToken(), h: &health{}, log: &logBuffer{}}
	opts := Options{
		Open:         fx.tk.opener("1234"),
		Name:         "t",
		Logger:       slog.New(slog.NewTextHandler(fx.log, &slog.HandlerOptions{Level: slog.LevelDebug})),
		PingInterval: pingInterval,
		MinBackoff:   time.Millisecond,
		MaxBackoff:   5 * time.Millisecond,
	}
	for _, mod := range mods {
		mod(&opts)
	}
	ks, err := Open(context.Background(), opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ks.Close() })
	ks.NotifyHealth(fx.h.set)
	fx.ks = ks
	id := []byte("key-1")
	pub, err := ks.CreateKey(context.Background(), keystore.CreateKeyRequest{ID: id, Algorithm: keystore.Ed25519})
	if err != nil {
		t.Fatal(err)
	}
	fx.ref = keystore.KeyRef{ID: id, Algorithm: keystore.Ed25519, Public: pub}
	return fx
}

func (fx *fixture) sign(t *testing.T, s crypto.Signer) error {
	t.Helper()
	msg := make([]byte, 32)
	rand.Read(msg)
	sig, err := s.Sign(nil, msg, crypto.Hash(0))
	if err == nil && !ed25519.Verify(fx.ref.Public.(ed25519.PublicKey), msg, sig) {
		t.Fatal("signature does not verify")
	}
	return err
}

// eventually polls cond; the bound is generous, never a performance claim.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

func wantUnavailable(t *testing.T, what string, err error) {
	t.Helper()
	if !errors.Is(err, errdefs.ErrUnavailable) || errdefs.ReasonOf(err) != errdefs.ReasonHSMUnavailable {
		t.Fatalf("%s: %v, want ErrUnavailable with reason HSM_UNAVAILABLE", what, err)
	}
	if errors.Is(err, errdefs.ErrNotFound) || errors.Is(err, errdefs.ErrPermissionDenied) {
		t.Fatalf("%s: %v carries the cause's kind; callers must see only unavailable", what, err)
	}
}

func TestFaultFailsFastAndRecovers(t *testing.T) {
	fx := newFixture(t, -1)
	s, err := fx.ks.Signer(context.Background(), fx.ref)
	if err != nil {
		t.Fatal(err)
	}
	if err := fx.sign(t, s); err != nil {
		t.Fatal(err)
	}
	if up, _ := fx.h.last(); !up {
		t.Fatal("health not SERVING after Open")
	}

	fx.tk.set(func(tk *token) { tk.present = false })
	// SoftHSM2-style: the lookup finds nothing; the confirming Ping turns
	// KEY_NOT_FOUND into HSM_UNAVAILABLE.
	err = fx.sign(t, s)
	wantUnavailable(t, "Sign on a vanished token", err)
	if !strings.Contains(err.Error(), "reconnecting") {
		t.Errorf("message does not say what happens next: %v", err)
	}
	if up, _ := fx.h.last(); up {
		t.Fatal("health still SERVING while the token is gone")
	}
	// Down: calls fail without reaching the token.
	before := fx.tk.calls.Load()
	for range 100 {
		wantUnavailable(t, "Sign while down", fx.sign(t, s))
		_, err := fx.ks.Signer(context.Background(), fx.ref)
		wantUnavailable(t, "Signer while down", err)
		wantUnavailable(t, "Ping while down", fx.ks.Ping(context.Background()))
	}
	if n := fx.tk.calls.Load() - before; n != 0 {
		t.Fatalf("%d calls reached the token while it was down", n)
	}

	fx.tk.set(func(tk *token) { tk.present = true })
	eventually(t, "recovery", fx.ks.Serving)
	eventually(t, "SERVING reported", func() bool { up, _ := fx.h.last(); return up })
	// The signer from before the fault finds its key in the new store.
	if err := fx.sign(t, s); err != nil {
		t.Fatalf("Sign after recovery: %v", err)
	}
	if fx.tk.opens != 2 {
		t.Fatalf("opens = %d, want 2 (start and one recovery)", fx.tk.opens)
	}
	if fx.log.count("HSM token recovered") != 1 {
		t.Fatalf("recovery not logged once:\n%s", fx.log.b.String())
	}
}

// A key missing from a working token is the caller's problem, not a fault.
func TestNotFoundOnHealthyTokenIsNotAFault(t *testing.T) {
	fx := newFixture(t, -1)
	ref := fx.ref
	ref.ID = []byte("missing")
	s, err := fx.ks.Signer(context.Background(), ref)
	if err != nil {
		t.Fatal(err)
	}
	if err := fx.sign(t, s); !errors.Is(err, errdefs.ErrNotFound) {
		t.Fatalf("Sign with a missing key: %v, want ErrNotFound", err)
	}
	if !fx.ks.Serving() {
		t.Fatal("a missing key took the store down")
	}
}

// The PIN was changed while the token was away: one login attempt when it
// comes back, then nothing, however long it waits.
func TestWrongPINOnRecoveryIsNeverRetried(t *testing.T) {
	fx := newFixture(t, -1)
	fx.tk.set(func(tk *token) { tk.present = false })
	wantUnavailable(t, "Ping", fx.ks.Ping(context.Background()))
	eventually(t, "reconnect attempts", func() bool { return fx.log.count("HSM reconnect attempt") >= 3 })
	fx.tk.set(func(tk *token) { tk.pin, tk.present, tk.pinAttempts = "5678", true, 0 })
	eventually(t, "the refusal", func() bool { return fx.log.count("refused the PIN") == 1 })
	attempts := fx.log.count("HSM reconnect attempt")
	time.Sleep(50 * time.Millisecond) // ten times the maximum backoff
	if n := fx.log.count("HSM reconnect attempt"); n != attempts {
		t.Fatalf("reconnect attempts went on after the PIN was refused: %d then %d", attempts, n)
	}
	fx.tk.mu.Lock()
	tries := fx.tk.pinAttempts
	fx.tk.mu.Unlock()
	if tries != 1 {
		t.Fatalf("the PIN was offered %d times, want 1", tries)
	}
	err := fx.ks.Ping(context.Background())
	wantUnavailable(t, "Ping after the PIN was refused", err)
	if !strings.Contains(err.Error(), "PIN incorrect") || !strings.Contains(err.Error(), "restart") {
		t.Fatalf("message does not say the PIN was refused and what to do: %v", err)
	}
	if fx.ks.Serving() {
		t.Fatal("serving after the PIN was refused")
	}
}

// An idle daemon notices a dead token by itself.
func TestPeriodicPingNoticesIdleFault(t *testing.T) {
	fx := newFixture(t, 2*time.Millisecond)
	fx.tk.set(func(tk *token) { tk.present = false })
	eventually(t, "NOT_SERVING without any call", func() bool { up, _ := fx.h.last(); return !up })
	fx.tk.set(func(tk *token) { tk.present = true })
	eventually(t, "SERVING again", func() bool { up, _ := fx.h.last(); return up })
}

func TestStartupErrorIsReturnedUnchanged(t *testing.T) {
	tk := newToken()
	_, err := Open(context.Background(), Options{Open: tk.opener("wrong")})
	if !errors.Is(err, errdefs.ErrPermissionDenied) || !strings.Contains(err.Error(), "PIN incorrect") {
		t.Fatalf("Open with a wrong PIN: %v", err)
	}
	tk.set(func(tk *token) { tk.present = false })
	if _, err := Open(context.Background(), Options{Open: tk.opener("1234")}); !errors.Is(err, errdefs.ErrNotFound) {
		t.Fatalf("Open without the token: %v", err)
	}
}

// Close returns while the loop is reconnecting, and calls fail afterwards.
func TestCloseWhileDown(t *testing.T) {
	fx := newFixture(t, -1)
	fx.tk.set(func(tk *token) { tk.present = false })
	wantUnavailable(t, "Ping", fx.ks.Ping(context.Background()))
	eventually(t, "reconnect attempts", func() bool { return fx.log.count("HSM reconnect attempt") >= 2 })
	if err := fx.ks.Close(); err != nil {
		t.Fatal(err)
	}
	err := fx.ks.Ping(context.Background())
	if !errors.Is(err, errdefs.ErrUnavailable) || !strings.Contains(err.Error(), "closed") {
		t.Fatalf("Ping after Close: %v", err)
	}
}

// Many goroutines sign while the token comes and goes: every call either
// signs correctly or fails as unavailable, and the store ends up serving.
func TestConcurrentFaults(t *testing.T) {
	fx := newFixture(t, time.Millisecond)
	var wg sync.WaitGroup
	stop := make(chan struct{})
	var ok, down atomic.Int64
	for range 4 {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				s, err := fx.ks.Signer(context.Background(), fx.ref)
				if err == nil {
					err = fx.sign(t, s)
				}
				switch {
				case err == nil:
					ok.Add(1)
				case errors.Is(err, errdefs.ErrUnavailable):
					down.Add(1)
					time.Sleep(50 * time.Microsecond) // a client backing off
				default:
					t.Errorf("unexpected error: %v", err)
					return
				}
			}
		})
	}
	for range 10 {
		fx.tk.set(func(tk *token) { tk.present = false })
		time.Sleep(time.Millisecond)
		fx.tk.set(func(tk *token) { tk.present = true })
		time.Sleep(2 * time.Millisecond)
	}
	eventually(t, "serving at the end", fx.ks.Serving)
	close(stop)
	wg.Wait()
	if ok.Load() == 0 {
		t.Fatal("no signature at all")
	}
	t.Logf("%d signed, %d failed fast", ok.Load(), down.Load())
}

// A call stuck in a hung token keeps the broken store from closing; the
// loop reconnects anyway instead of waiting for it.
func TestStuckCloseDoesNotBlockReconnect(t *testing.T) {
	fx := newFixture(t, -1, func(o *Options) { o.PingTimeout = 10 * time.Millisecond })
	gate := make(chan struct{})
	fx.tk.set(func(tk *token) { tk.closeGate = gate })
	fx.tk.set(func(tk *token) { tk.present = false })
	wantUnavailable(t, "Ping", fx.ks.Ping(context.Background()))
	fx.tk.set(func(tk *token) { tk.present = true })
	eventually(t, "recovery while the old store is still closing", fx.ks.Serving)
	if fx.log.count("still closing") != 1 {
		t.Fatalf("the stuck close was not reported once:\n%s", fx.log.b.String())
	}
	s, err := fx.ks.Signer(context.Background(), fx.ref)
	if err != nil {
		t.Fatal(err)
	}
	if err := fx.sign(t, s); err != nil {
		t.Fatalf("Sign after recovery: %v", err)
	}
	fx.tk.set(func(tk *token) { tk.closeGate = nil })
	close(gate)
	if err := fx.ks.Close(); err != nil {
		t.Fatal(err)
	}
}
