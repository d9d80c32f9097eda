//go:build cgo

package pkcs11_test

import (
	"context"
	"crypto"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/signerd/signerd/internal/errdefs"
	"github.com/signerd/signerd/internal/keystore"
	"github.com/signerd/signerd/internal/keystore/pkcs11"
	"github.com/signerd/signerd/internal/testutil/softhsm"
)

func TestOpenErrors(t *testing.T) {
	tok := softhsm.NewToken(t)
	garbage := filepath.Join(t.TempDir(), "garbage.so")
	if err := os.WriteFile(garbage, []byte("not an ELF file"), 0o600); err != nil {
		t.Fatal(err)
	}
	const wrongPIN = "wrong-pin-7c1e9a"
	tests := []struct {
		name     string
		edit     func(*pkcs11.Config)
		wantErr  error
		wantText []string
	}{
		{"module missing", func(c *pkcs11.Config) { c.ModulePath = "/nonexistent/libsofthsm2.so" },
			errdefs.ErrInvalidArgument, []string{"/nonexistent/libsofthsm2.so", "apt-get install softhsm2"}},
		{"module not PKCS#11", func(c *pkcs11.Config) { c.ModulePath = garbage },
			errdefs.ErrInvalidArgument, []string{garbage, "not a PKCS#11 library", "apt-get install softhsm2"}},
		{"module is a directory", func(c *pkcs11.Config) { c.ModulePath = t.TempDir() },
			errdefs.ErrInvalidArgument, []string{"not a regular file"}},
		{"no such token", func(c *pkcs11.Config) { c.TokenLabel = "no-such-token" },
			errdefs.ErrNotFound, []string{`"no-such-token"`, "(tokens present: " + strconv.Quote(tok.Label)}},
		{"wrong PIN", func(c *pkcs11.Config) { c.PIN = wrongPIN },
			errdefs.ErrPermissionDenied, []string{"PIN incorrect for token", tok.Label}},
		{"no PIN", func(c *pkcs11.Config) { c.PIN = "" },
			errdefs.ErrInvalidArgument, []string{"no PIN"}},
		{"no label", func(c *pkcs11.Config) { c.TokenLabel = "" },
			errdefs.ErrInvalidArgument, []string{"no token label"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := config(t, tok)
			tt.edit(&cfg)
			ks, err := pkcs11.Open(context.Background(), cfg)
			if err == nil {
				ks.Close()
				t.Fatal("Open succeeded")
			}
			t.Log(err)
			if !errors.Is(err, tt.wantErr) {
				t.Errorf("error %q does not wrap %v", err, tt.wantErr)
			}
			for _, s := range tt.wantText {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("error %q does not mention %q", err, s)
				}
			}
			if tt.wantErr == errdefs.ErrNotFound && strings.HasSuffix(err.Error(), ": not found") {
				t.Errorf("error %q ends with its kind after a complete sentence", err)
			}
			for _, pin := range []string{tok.PIN, wrongPIN} {
				if strings.Contains(err.Error(), pin) {
					t.Errorf("error %q contains a PIN", err)
				}
			}
		})
	}
	// The failures above left nothing behind: the right config opens.
	open(t, tok)
}

// A process already logged in to the token gets CKR_USER_ALREADY_LOGGED_IN
// for any PIN; a second KeyStore must still have its PIN checked.
func TestOpenSecondStoreChecksPIN(t *testing.T) {
	tok := softhsm.NewToken(t)
	first := open(t, tok)
	ref, _ := createKey(t, first, algorithms[0])

	cfg := config(t, tok)
	cfg.PIN = "wrong-but-already-logged-in"
	if ks, err := pkcs11.Open(context.Background(), cfg); !errors.Is(err, errdefs.ErrPermissionDenied) {
		if ks != nil {
			ks.Close()
		}
		t.Fatalf("second Open with a wrong PIN: %v, want ErrPermissionDenied", err)
	}

	second, err := pkcs11.Open(context.Background(), config(t, tok))
	if err != nil {
		t.Fatalf("second Open with the right PIN: %v", err)
	}
	// The first Close must not log the second store out.
	if err := first.Close(); err != nil {
		t.Fatal(err)
	}
	s, err := second.Signer(context.Background(), ref)
	if err != nil {
		t.Fatalf("Signer after the other store closed: %v", err)
	}
	sign(t, s, ref.Algorithm, []byte("still logged in"))
	if err := second.Close(); err != nil {
		t.Fatal(err)
	}
}

func TestCloseThenReopen(t *testing.T) {
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
	if err := ks.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := ks.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	// Signers and calls after Close fail as unavailable.
	for i, s := range signers {
		in, opts := message(refs[i].Algorithm, []byte("x"))
		if _, err := s.Sign(nil, in, opts); !errors.Is(err, errdefs.ErrUnavailable) {
			t.Errorf("%s Sign after Close: %v, want ErrUnavailable", refs[i].Algorithm, err)
		}
	}
	if err := ks.Ping(ctx); !errors.Is(err, errdefs.ErrUnavailable) {
		t.Errorf("Ping after Close: %v, want ErrUnavailable", err)
	}

	// Close finalized the library; a new store initialises it again and
	// finds the keys the first one made.
	ks2 := open(t, tok)
	if err := ks2.Ping(ctx); err != nil {
		t.Fatalf("Ping: %v", err)
	}
	for _, ref := range refs {
		s, err := ks2.Signer(ctx, ref)
		if err != nil {
			t.Fatalf("Signer(%s) after reopen: %v", ref.Algorithm, err)
		}
		sign(t, s, ref.Algorithm, []byte("again"))
	}
}
