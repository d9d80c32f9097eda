//go:build cgo

package pkcs11_test

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/pem"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/signerd/signerd/internal/keystore"
	"github.com/signerd/signerd/internal/keystore/pkcs11"
	"github.com/signerd/signerd/internal/testutil/softhsm"
)

var algorithms = []keystore.Algorithm{keystore.Ed25519, keystore.ECDSAP256}

func open(t testing.TB, tok *softhsm.Token) *pkcs11.KeyStore {
	t.Helper()
	ks, err := pkcs11.Open(context.Background(), config(t, tok))
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() {
		if err := ks.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return ks
}

func newID(t testing.TB) []byte {
	id := make([]byte, 16)
	if _, err := rand.Read(id); err != nil {
		t.Fatal(err)
	}
	return id
}

// config is the token's config with the store's log in the test's output.
func config(t testing.TB, tok *softhsm.Token) pkcs11.Config {
	cfg := tok.Config()
	cfg.Logger = slog.New(slog.NewTextHandler(t.Output(), nil))
	return cfg
}

// createKey makes a key and returns its ref and a signer for it.
func createKey(t testing.TB, ks *pkcs11.KeyStore, alg keystore.Algorithm) (keystore.KeyRef, crypto.Signer) {
	t.Helper()
	ctx := context.Background()
	id := newID(t)
	pub, err := ks.CreateKey(ctx, keystore.CreateKeyRequest{ID: id, Label: "test " + string(alg), Algorithm: alg})
	if err != nil {
		t.Fatalf("CreateKey(%s): %v", alg, err)
	}
	ref := keystore.KeyRef{ID: id, Algorithm: alg, Public: pub}
	s, err := ks.Signer(ctx, ref)
	if err != nil {
		t.Fatalf("Signer(%s): %v", alg, err)
	}
	return ref, s
}

// message returns what Sign takes for alg, and its opts: the message itself
// for Ed25519, a SHA-256 digest for ECDSA.
func message(alg keystore.Algorithm, msg []byte) ([]byte, crypto.SignerOpts) {
	if alg == keystore.Ed25519 {
		return msg, crypto.Hash(0)
	}
	d := sha256.Sum256(msg)
	return d[:], crypto.SHA256
}

// sign signs msg with s and verifies the result with the standard library.
func sign(t testing.TB, s crypto.Signer, alg keystore.Algorithm, msg []byte) []byte {
	t.Helper()
	in, opts := message(alg, msg)
	sig, err := s.Sign(rand.Reader, in, opts)
	if err != nil {
		t.Fatalf("Sign(%s): %v", alg, err)
	}
	if !verify(s.Public(), alg, in, sig) {
		t.Fatalf("%s signature does not verify", alg)
	}
	return sig
}

func verify(pub crypto.PublicKey, alg keystore.Algorithm, in, sig []byte) bool {
	if alg == keystore.Ed25519 {
		return ed25519.Verify(pub.(ed25519.PublicKey), in, sig)
	}
	return ecdsa.VerifyASN1(pub.(*ecdsa.PublicKey), in, sig)
}

// opensslVerify checks sig with `openssl pkeyutl -verify`, as an outside
// verifier would: Ed25519 over the raw message (-rawin), ECDSA over the
// digest.
func opensslVerify(t *testing.T, pub crypto.PublicKey, alg keystore.Algorithm, in, sig []byte) {
	t.Helper()
	dir := t.TempDir()
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	write := func(name string, b []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	pubPath := write("pub.pem", pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}))
	inPath := write("in", in)
	sigPath := write("sig", sig)
	args := []string{"pkeyutl", "-verify", "-pubin", "-inkey", pubPath, "-in", inPath, "-sigfile", sigPath}
	if alg == keystore.Ed25519 {
		args = append(args, "-rawin")
	}
	out, err := exec.Command("openssl", args...).CombinedOutput()
	if err != nil || !bytes.Contains(out, []byte("Signature Verified Successfully")) {
		t.Fatalf("openssl %v: %v\n%s", args, err, out)
	}
}

// checkSignOnly reads both halves of key id through C_GetAttributeValue on
// the token and fails unless the private half can sign and nothing else
// (no decrypt, unwrap or derive) and the public half can verify and nothing
// else (no encrypt, wrap or derive): SoftHSM2's defaults allow all of them.
// Both must be frozen too (not modifiable, the private half not copyable).
func checkSignOnly(t *testing.T, tok *softhsm.Token, id []byte) {
	t.Helper()
	ka := tok.KeyAttributes(t, id)
	pa := tok.PublicKeyAttributes(t, id)
	tests := []struct {
		name      string
		got, want bool
	}{
		{"private CKA_SIGN", ka.Sign, true},
		{"private CKA_DECRYPT", ka.Decrypt, false},
		{"private CKA_UNWRAP", ka.Unwrap, false},
		{"private CKA_DERIVE", ka.Derive, false},
		{"public CKA_VERIFY", pa.Verify, true},
		{"public CKA_ENCRYPT", pa.Encrypt, false},
		{"public CKA_WRAP", pa.Wrap, false},
		{"public CKA_DERIVE", pa.Derive, false},
		// Frozen, so none of the above can be changed (hardening.go).
		{"private CKA_MODIFIABLE", ka.Modifiable, false},
		{"private CKA_COPYABLE", ka.Copyable, false},
		{"public CKA_MODIFIABLE", pa.Modifiable, false},
		{"public CKA_COPYABLE", pa.Copyable, false},
	}
	for _, tt := range tests {
		if tt.got != tt.want {
			t.Errorf("%s = %v, want %v", tt.name, tt.got, tt.want)
		}
	}
}
