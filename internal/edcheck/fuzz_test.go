package edcheck

import (
	"crypto/ed25519"
	"encoding/hex"
	"sync"
	"testing"
)

// fuzzKeys are the keys the fuzz target checks against: an ordinary key
// (with its private half, so that the corpus can hold valid signatures),
// and every small-order point as a key.
var fuzzKeys = sync.OnceValue(func() []*Verifier {
	seed := make([]byte, ed25519.SeedSize)
	pub := ed25519.NewKeyFromSeed(seed).Public().(ed25519.PublicKey)
	var vs []*Verifier
	for _, k := range append([]string{hex.EncodeToString(pub)}, smallOrder...) {
		b, _ := hex.DecodeString(k)
		v, err := NewVerifier(b)
		if err != nil {
			panic(err)
		}
		vs = append(vs, v)
	}
	return vs
})

// FuzzVerify holds Verifier.Verify to crypto/ed25519.Verify on arbitrary
// signatures and messages.
func FuzzVerify(f *testing.F) {
	priv := ed25519.NewKeyFromSeed(make([]byte, ed25519.SeedSize))
	for _, m := range []string{"", "a", "0123456789abcdef0123456789abcdef"} {
		f.Add(uint8(0), []byte(m), ed25519.Sign(priv, []byte(m)))
	}
	for i, s := range smallOrder {
		b, _ := hex.DecodeString(s)
		f.Add(uint8(i+1), []byte("m"), append(b, make([]byte, 32)...))
	}
	f.Fuzz(func(t *testing.T, which uint8, msg, sig []byte) {
		keys := fuzzKeys()
		v := keys[int(which)%len(keys)]
		want := ed25519.Verify(v.PublicKey(), msg, sig)
		if got := v.Verify(msg, sig); got != want {
			t.Fatalf("key %x msg %x sig %x: Verify = %v, crypto/ed25519 = %v", v.PublicKey(), msg, sig, got, want)
		}
	})
}
