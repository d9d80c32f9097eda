//go:build cgo

package pkcs11_test

import (
	"context"
	"crypto"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/signerd/signerd/internal/errdefs"
	"github.com/signerd/signerd/internal/keystore"
	"github.com/signerd/signerd/internal/keystore/pkcs11"
	"github.com/signerd/signerd/internal/testutil/softhsm"
)

// Each breakage is something the world can do to a running daemon; signing
// (and Ping) must recover by itself, for both algorithms and from many
// goroutines at once.
func TestRecover(t *testing.T) {
	tests := []struct {
		name    string
		breakIt func(*pkcs11.KeyStore) error
	}{
		// Closes every session of the process, which also logs it
		// out, and invalidates private-object handles.
		{"all sessions closed", pkcs11.CloseAllSessions},
		{"logged out", pkcs11.LogoutProcess},
		{"stale key handles", func(ks *pkcs11.KeyStore) error { pkcs11.PoisonHandles(ks); return nil }},
	}
	tok := softhsm.NewToken(t)
	ks := open(t, tok)
	var refs []keystore.KeyRef
	var signers []crypto.Signer
	for _, alg := range algorithms {
		ref, s := createKey(t, ks, alg)
		refs, signers = append(refs, ref), append(signers, s)
		sign(t, s, alg, []byte("warm the cache"))
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for round := range 2 {
				if err := tt.breakIt(ks); err != nil {
					t.Fatalf("break: %v", err)
				}
				if round == 0 {
					// One goroutine at a time...
					for i, s := range signers {
						sign(t, s, refs[i].Algorithm, []byte("after "+tt.name))
					}
				} else {
					// ...and many at once, racing to repair.
					signConcurrently(t, signers, refs, 16, 4)
				}
			}
			if err := tt.breakIt(ks); err != nil {
				t.Fatalf("break: %v", err)
			}
			if err := ks.Ping(context.Background()); err != nil {
				t.Fatalf("Ping after %s: %v", tt.name, err)
			}
			// Lookups recover too, and so does a new signer.
			for _, ref := range refs {
				s, err := ks.Signer(context.Background(), ref)
				if err != nil {
					t.Fatalf("Signer after %s: %v", tt.name, err)
				}
				sign(t, s, ref.Algorithm, []byte("new signer"))
			}
		})
	}
}

// A finalized library is a dead HSM: calls fail as unavailable with reason
// HSM_UNAVAILABLE instead of hanging or retrying forever, Close still
// works, and a new Open starts over.
func TestUnavailable(t *testing.T) {
	tok := softhsm.NewToken(t)
	ctx := context.Background()
	ks, err := pkcs11.Open(ctx, config(t, tok))
	if err != nil {
		t.Fatal(err)
	}
	var refs []keystore.KeyRef
	var signers []crypto.Signer
	for _, alg := range algorithms {
		ref, s := createKey(t, ks, alg)
		refs, signers = append(refs, ref), append(signers, s)
	}
	if err := pkcs11.FinalizeLibrary(ks); err != nil {
		t.Fatal(err)
	}
	check := func(what string, err error) {
		t.Helper()
		if !errors.Is(err, errdefs.ErrUnavailable) || errdefs.ReasonOf(err) != errdefs.ReasonHSMUnavailable {
			t.Errorf("%s: %v, want ErrUnavailable with reason HSM_UNAVAILABLE", what, err)
		}
	}
	for i, s := range signers {
		in, opts := message(refs[i].Algorithm, []byte("x"))
		_, err := s.Sign(nil, in, opts)
		check(fmt.Sprintf("Sign(%s)", refs[i].Algorithm), err)
	}
	check("Ping", ks.Ping(ctx))
	_, err = ks.CreateKey(ctx, keystore.CreateKeyRequest{ID: newID(t), Algorithm: keystore.Ed25519})
	check("CreateKey", err)
	if err := ks.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}

	ks2 := open(t, tok)
	for _, ref := range refs {
		s, err := ks2.Signer(ctx, ref)
		if err != nil {
			t.Fatalf("Signer after reopen: %v", err)
		}
		sign(t, s, ref.Algorithm, []byte("back"))
	}
}

// signConcurrently signs from goroutines, each n times with every signer,
// and verifies every signature.
func signConcurrently(t *testing.T, signers []crypto.Signer, refs []keystore.KeyRef, goroutines, n int) {
	t.Helper()
	var wg sync.WaitGroup
	errs := make(chan error, goroutines)
	for g := range goroutines {
		wg.Go(func() {
			for i := range n {
				for j, s := range signers {
					alg := refs[j].Algorithm
					in, opts := message(alg, fmt.Appendf(nil, "goroutine %d message %d", g, i))
					sig, err := s.Sign(nil, in, opts)
					if err != nil {
						errs <- fmt.Errorf("%s: %w", alg, err)
						return
					}
					if !verify(s.Public(), alg, in, sig) {
						errs <- fmt.Errorf("%s: signature does not verify", alg)
						return
					}
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

func TestConcurrentSign(t *testing.T) {
	tok := softhsm.NewToken(t)
	ks := open(t, tok)
	var refs []keystore.KeyRef
	var signers []crypto.Signer
	for _, alg := range algorithms {
		ref, s := createKey(t, ks, alg)
		refs, signers = append(refs, ref), append(signers, s)
	}
	// 32 goroutines on pools of 8 sessions: most wait for a session.
	signConcurrently(t, signers, refs, 32, 8)
}

// The PIN changed while signerd runs: the login lost afterwards cannot be
// restored, and the old PIN is offered to the token once, never again
// (each refusal would count towards locking the token).
func TestPINChangedUnderUs(t *testing.T) {
	tok := softhsm.NewToken(t)
	ks := open(t, tok)
	ref, s := createKey(t, ks, keystore.Ed25519)
	if err := pkcs11.ChangePIN(ks, tok.PIN, "a-new-pin-0000"); err != nil {
		t.Fatal(err)
	}
	if err := pkcs11.CloseAllSessions(ks); err != nil {
		t.Fatal(err)
	}
	in, opts := message(ref.Algorithm, []byte("x"))
	_, err := s.Sign(nil, in, opts)
	if !errors.Is(err, errdefs.ErrPermissionDenied) || !strings.Contains(err.Error(), "PIN incorrect") {
		t.Fatalf("Sign after the PIN changed: %v, want PIN incorrect", err)
	}
	_, err = s.Sign(nil, in, opts)
	if !errors.Is(err, errdefs.ErrPermissionDenied) || !strings.Contains(err.Error(), "not logging in again") {
		t.Fatalf("second Sign: %v, want a refusal without a login attempt", err)
	}
	if err := ks.Ping(context.Background()); !errors.Is(err, errdefs.ErrUnavailable) || !errors.Is(err, errdefs.ErrPermissionDenied) {
		t.Fatalf("Ping: %v", err)
	}
	for _, p := range []string{tok.PIN, "a-new-pin-0000"} {
		if strings.Contains(err.Error(), p) {
			t.Errorf("error %q contains a PIN", err)
		}
	}
}
