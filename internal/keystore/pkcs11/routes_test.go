//go:build cgo

package pkcs11_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/signerd/signerd/internal/errdefs"
	"github.com/signerd/signerd/internal/keystore"
	"github.com/signerd/signerd/internal/keystore/pkcs11"
	"github.com/signerd/signerd/internal/testutil/softhsm"
)

// Every route to the token (SoftHSM2's library, OpenSC's pkcs11-spy in
// front of it, p11-kit's client over a p11-kit server) must survive the
// sequence that exercises initialisation: two KeyStores sharing the
// library, a raw use of the library while they are open, closing them in
// turn (the library is finalized once, at the last), and a fresh Open
// (initialised again). p11-kit's client counts C_Initialize calls, so a
// second initialisation there succeeds instead of failing as SoftHSM2's does.
func TestOpenThroughEveryRoute(t *testing.T) {
	for _, name := range softhsm.RouteNames {
		t.Run(name, func(t *testing.T) {
			tok := softhsm.NewToken(t)
			route := tok.Route(t, name)
			cfg := config(t, tok)
			cfg.ModulePath = route.ModulePath
			ctx := context.Background()

			algs := []keystore.Algorithm{keystore.ECDSAP256}
			if route.EdDSA {
				algs = algorithms
			}
			first, err := pkcs11.Open(ctx, cfg)
			if err != nil {
				t.Fatalf("Open through %s: %v", name, err)
			}
			if !route.EdDSA {
				// The route hides CKM_EDDSA: Ed25519 is refused up front,
				// saying what to use, and ECDSA keeps working.
				_, err := first.CreateKey(ctx, keystore.CreateKeyRequest{ID: newID(t), Label: "no eddsa", Algorithm: keystore.Ed25519})
				if !errors.Is(err, errdefs.ErrFailedPrecondition) || !strings.Contains(err.Error(), "this HSM offers no CKM_EDDSA; use ecdsa-p256") {
					t.Fatalf("CreateKey(ed25519) through %s: %v, want FailedPrecondition naming CKM_EDDSA", name, err)
				}
			}
			var refs []keystore.KeyRef
			for _, alg := range algs {
				ref, s := createKey(t, first, alg)
				sign(t, s, alg, []byte("first store"))
				refs = append(refs, ref)
			}
			second, err := pkcs11.Open(ctx, cfg)
			if err != nil {
				t.Fatalf("second Open through %s: %v", name, err)
			}
			// A raw use of the library while the stores hold it.
			ka, err := pkcs11.InspectPrivateKey(route.ModulePath, tok.Label, tok.PIN, refs[0].ID)
			if err != nil || !ka.Sensitive || ka.Extractable {
				t.Fatalf("InspectPrivateKey while open: %+v, %v", ka, err)
			}
			if err := first.Close(); err != nil {
				t.Fatalf("Close first: %v", err)
			}
			for _, ref := range refs {
				s, err := second.Signer(ctx, ref)
				if err != nil {
					t.Fatalf("Signer(%s) after the first store closed: %v", ref.Algorithm, err)
				}
				sign(t, s, ref.Algorithm, []byte("second store"))
			}
			if err := second.Close(); err != nil {
				t.Fatalf("Close second: %v", err)
			}
			// The library was finalized; a raw use initialises it alone
			// and a new store after it initialises it again.
			if _, err := pkcs11.InspectPrivateKey(route.ModulePath, tok.Label, tok.PIN, refs[0].ID); err != nil {
				t.Fatalf("InspectPrivateKey with no store open: %v", err)
			}
			third, err := pkcs11.Open(ctx, cfg)
			if err != nil {
				t.Fatalf("Open after the last Close: %v", err)
			}
			defer third.Close()
			for _, ref := range refs {
				s, err := third.Signer(ctx, ref)
				if err != nil {
					t.Fatalf("Signer(%s) after reopening: %v", ref.Algorithm, err)
				}
				sign(t, s, ref.Algorithm, []byte("third store"))
			}
		})
	}
}
