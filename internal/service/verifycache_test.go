package service

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"testing"

	"github.com/signerd/signerd/internal/errdefs"
	"github.com/signerd/signerd/internal/keystore"
	"github.com/signerd/signerd/internal/pkgsig"
)

func cacheKey(t *testing.T, i int) [sha256.Size]byte {
	t.Helper()
	pub := make(ed25519.PublicKey, ed25519.PublicKeySize)
	d := sha256.Sum256(binary.BigEndian.AppendUint64(nil, uint64(i)))
	k, ok := verifiedKey(pub, d[:], make([]byte, ed25519.SignatureSize))
	if !ok {
		t.Fatal("well-formed triple not cacheable")
	}
	return k
}

// The cache holds at most its bound, keeps what was used recently across
// a rotation, and forgets the rest.
func TestVerifiedCacheBound(t *testing.T) {
	c := newVerifiedCache(8) // two generations of 4
	for i := range 4 {
		c.add(cacheKey(t, i))
	}
	for i := range 4 {
		if !c.has(cacheKey(t, i)) {
			t.Fatalf("entry %d missing before any rotation", i)
		}
	}
	for i := 4; i < 20; i++ {
		c.add(cacheKey(t, i))
		if !c.has(cacheKey(t, 0)) { // kept warm: survives every rotation
			t.Fatalf("entry 0, used after each insert, was evicted at insert %d", i)
		}
		if n := c.len(); n > 8 {
			t.Fatalf("cache holds %d entries, bound 8", n)
		}
	}
	if c.has(cacheKey(t, 1)) {
		t.Fatal("entry 1, never used again, survived 16 inserts into a cache of 8")
	}
	off := newVerifiedCache(0)
	off.add(cacheKey(t, 1))
	if off.has(cacheKey(t, 1)) {
		t.Fatal("a disabled cache remembered an entry")
	}
}

func TestVerifiedKeyLengths(t *testing.T) {
	pub := make(ed25519.PublicKey, 32)
	d := make([]byte, 32)
	sig := make([]byte, 64)
	for _, tc := range []struct {
		name        string
		pub, d, sig []byte
		ok          bool
	}{
		{"well formed", pub, d, sig, true},
		{"short key", pub[:31], d, sig, false},
		{"long signature", pub, d, append(sig, 0), false},
		{"short digest", pub, d[:31], sig, false},
	} {
		if _, ok := verifiedKey(tc.pub, tc.d, tc.sig); ok != tc.ok {
			t.Errorf("%s: cacheable = %v, want %v", tc.name, ok, tc.ok)
		}
	}
}

// A signature that verified once is not verified again, but trust is
// decided afresh on every call: removing trust refuses it at once, and a
// forged signature is never remembered.
func TestVerifyCacheKeepsTrustDecisionsFresh(t *testing.T) {
	f := newFixture(t)
	f.createKey(t, "release", keystore.Ed25519)
	tk := f.trust(t, "acme", "release")
	d, doc := f.sign(t, "release", "pkg")
	in := VerifyInput{Org: "acme", Digest: d, Document: doc}
	for i := range 2 {
		if _, err := f.svc.Verify(f.ctx, in); err != nil {
			t.Fatalf("Verify #%d: %v", i+1, err)
		}
	}
	if n := f.svc.verified.len(); n != 1 {
		t.Fatalf("cache holds %d entries after verifying one signature twice, want 1", n)
	}
	if _, err := f.svc.RemoveTrust(f.ctx, "acme", tk.Fingerprint); err != nil {
		t.Fatal(err)
	}
	if _, err := f.svc.Verify(f.ctx, in); !errors.Is(err, errdefs.ErrKeyRevoked) {
		t.Fatalf("Verify of a cached signature after trust removal = %v, want KEY_REVOKED", err)
	}
	if err := f.svc.SetRequireSignatures(f.ctx, "other", false); err != nil {
		t.Fatal(err)
	}
	if _, err := f.svc.Verify(f.ctx, VerifyInput{Org: "other", Digest: d, Document: doc}); !errors.Is(err, errdefs.ErrUntrustedSigner) {
		t.Fatalf("Verify of a cached signature for an org that never trusted the key = %v, want UNTRUSTED_SIGNER", err)
	}

	f.trust(t, "acme", "release")
	var forged pkgsig.Document
	if err := json.Unmarshal(doc, &forged); err != nil {
		t.Fatal(err)
	}
	forged.Signature = base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{0xab}, 64))
	for i := range 2 {
		if _, err := f.svc.Verify(f.ctx, VerifyInput{Org: "acme", Digest: d, Document: forged.Encode()}); !errors.Is(err, errdefs.ErrInvalidSignature) {
			t.Fatalf("forged signature, call #%d: %v, want INVALID_SIGNATURE", i+1, err)
		}
	}
	if n := f.svc.verified.len(); n != 1 {
		t.Fatalf("cache holds %d entries after a forged signature, want only the good one", n)
	}
}
