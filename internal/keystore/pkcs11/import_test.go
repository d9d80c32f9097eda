//go:build cgo

package pkcs11_test

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"os"
	"testing"

	p11 "github.com/miekg/pkcs11"

	"github.com/signerd/signerd/internal/errdefs"
	"github.com/signerd/signerd/internal/keystore"
	"github.com/signerd/signerd/internal/testutil/softhsm"
)

func mustHex(t testing.TB, s string) []byte {
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// The Cloacina vector (shared/fixtures/cloacina/vectors.json): Ed25519 is
// deterministic, so the token must reproduce the signature byte for byte.
func TestImportEd25519Vector(t *testing.T) {
	tok := softhsm.NewToken(t)
	ks := open(t, tok)
	ctx := context.Background()
	priv := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{0x42}, ed25519.SeedSize))
	id := newID(t)
	pub, err := ks.ImportKey(ctx, keystore.ImportKeyRequest{ID: id, Label: "cloacina vector", Algorithm: keystore.Ed25519, Private: priv})
	if err != nil {
		t.Fatalf("ImportKey: %v", err)
	}
	wantPub := mustHex(t, "2152f8d19b791d24453242e15f2eab6cb7cffa7b6a5ed30097960e069881db12")
	if !bytes.Equal(pub.(ed25519.PublicKey), wantPub) {
		t.Fatalf("public key %x, want %x", pub, wantPub)
	}
	s, err := ks.Signer(ctx, keystore.KeyRef{ID: id, Algorithm: keystore.Ed25519, Public: ed25519.PublicKey(wantPub)})
	if err != nil {
		t.Fatalf("Signer: %v", err)
	}
	msg := mustHex(t, "59ff55de6857b718c180deb034d529996084be9556ca645e4e1de2129aa7e556")
	sig, err := s.Sign(nil, msg, crypto.Hash(0))
	if err != nil {
		t.Fatalf("Sign: %v", err)
	}
	wantSig := mustHex(t, "eef5517d77af38c1a862a371ce6cd4c6a1bdeaf4ec74aa3b7f99ee54e02fbcf558d83d47b694251661c7cf16f2bb3052bc9d7fd38cde8169dea2b019460da10a")
	if !bytes.Equal(sig, wantSig) {
		t.Fatalf("signature %x, want %x", sig, wantSig)
	}
	opensslVerify(t, pub, keystore.Ed25519, msg, sig)
	checkImportedAttributes(t, tok, id)
}

// The SchemaPin test key (copied from
// shared/fixtures/schemapin/vectors/keys into testdata/).
func TestImportECDSAFixture(t *testing.T) {
	tok := softhsm.NewToken(t)
	ks := open(t, tok)
	ctx := context.Background()
	priv := readPKCS8(t, "testdata/schemapin-priv_pkcs8.pem").(*ecdsa.PrivateKey)
	wantPub := readPublic(t, "testdata/schemapin-pub.pem").(*ecdsa.PublicKey)

	id := newID(t)
	pub, err := ks.ImportKey(ctx, keystore.ImportKeyRequest{ID: id, Label: "schemapin vector", Algorithm: keystore.ECDSAP256, Private: priv})
	if err != nil {
		t.Fatalf("ImportKey: %v", err)
	}
	if !wantPub.Equal(pub) {
		t.Fatal("imported public key differs from pub.pem")
	}
	s, err := ks.Signer(ctx, keystore.KeyRef{ID: id, Algorithm: keystore.ECDSAP256, Public: wantPub})
	if err != nil {
		t.Fatalf("Signer: %v", err)
	}
	sig := sign(t, s, keystore.ECDSAP256, []byte("skill root"))
	digest := sha256.Sum256([]byte("skill root"))
	opensslVerify(t, wantPub, keystore.ECDSAP256, digest[:], sig)
	checkImportedAttributes(t, tok, id)
}

// checkImportedAttributes: imported keys are as protected as generated ones,
// except that the token knows they were not born in it.
func checkImportedAttributes(t *testing.T, tok *softhsm.Token, id []byte) {
	t.Helper()
	ka := tok.KeyAttributes(t, id)
	if !ka.Token || !ka.Private || !ka.Sensitive || ka.Extractable || !ka.Sign || ka.Local {
		t.Errorf("imported key attributes %+v", ka)
	}
	checkSignOnly(t, tok, id)
	if err := tok.ReadPrivateValue(t, id); !errors.Is(err, p11.Error(p11.CKR_ATTRIBUTE_SENSITIVE)) {
		t.Errorf("reading CKA_VALUE of an imported key: %v, want CKR_ATTRIBUTE_SENSITIVE", err)
	}
}

func TestImportRefusals(t *testing.T) {
	tok := softhsm.NewToken(t)
	ks := open(t, tok)
	ctx := context.Background()
	_, edPriv, _ := ed25519.GenerateKey(rand.Reader)
	ecPriv, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	p384, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	inconsistent := bytes.Clone(edPriv)
	inconsistent[63] ^= 1
	taken := newID(t)
	if _, err := ks.ImportKey(ctx, keystore.ImportKeyRequest{ID: taken, Algorithm: keystore.Ed25519, Private: edPriv}); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		req     keystore.ImportKeyRequest
		wantErr error
	}{
		{"ID in use", keystore.ImportKeyRequest{ID: taken, Algorithm: keystore.ECDSAP256, Private: ecPriv}, errdefs.ErrAlreadyExists},
		{"ecdsa key as ed25519", keystore.ImportKeyRequest{ID: newID(t), Algorithm: keystore.Ed25519, Private: ecPriv}, errdefs.ErrInvalidArgument},
		{"ed25519 key as ecdsa", keystore.ImportKeyRequest{ID: newID(t), Algorithm: keystore.ECDSAP256, Private: edPriv}, errdefs.ErrInvalidArgument},
		{"P-384", keystore.ImportKeyRequest{ID: newID(t), Algorithm: keystore.ECDSAP256, Private: p384}, errdefs.ErrInvalidArgument},
		{"seed and public half disagree", keystore.ImportKeyRequest{ID: newID(t), Algorithm: keystore.Ed25519, Private: inconsistent}, errdefs.ErrInvalidArgument},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := ks.ImportKey(ctx, tt.req); !errors.Is(err, tt.wantErr) {
				t.Fatalf("ImportKey: %v, want %v", err, tt.wantErr)
			}
		})
	}
}

func readPEM(t testing.TB, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	blk, _ := pem.Decode(b)
	if blk == nil {
		t.Fatalf("%s: no PEM block", path)
	}
	return blk.Bytes
}

func readPKCS8(t testing.TB, path string) crypto.PrivateKey {
	k, err := x509.ParsePKCS8PrivateKey(readPEM(t, path))
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func readPublic(t testing.TB, path string) crypto.PublicKey {
	k, err := x509.ParsePKIXPublicKey(readPEM(t, path))
	if err != nil {
		t.Fatal(err)
	}
	return k
}
