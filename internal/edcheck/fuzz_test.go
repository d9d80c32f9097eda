package edcheck

import (
	"bytes"
	"crypto/ed25519"
	"encoding/hex"
	"sync"
	"testing"

	"filippo.io/edwards25519"
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

// FuzzMulAdd holds the affine Niels tables to the Point-based reference
// on arbitrary scalars below 2^253 (digits' domain: the input padded or
// cut to 32 bytes, its top three bits cleared, so that no execution is
// wasted on a refusal), for B and for the fuzz keys' negations.
func FuzzMulAdd(f *testing.F) {
	for i, s := range edgeScalars() {
		f.Add(uint8(i), s.s[:])
	}
	f.Fuzz(func(t *testing.T, which uint8, in []byte) {
		var s [32]byte
		copy(s[:], in)
		s[31] &= 0x1f
		nt, rt := fuzzTables()
		i := int(which) % len(nt)
		d := digits(s[:])
		var acc extended
		acc.identity()
		nt[i].mulAdd(&acc, &d)
		ref := edwards25519.NewIdentityPoint()
		rt[i].mulAdd(ref, &d)
		if got, want := encode(&acc), ref.Bytes(); !bytes.Equal(got, want) {
			t.Fatalf("table %d, s %x: %x, reference %x", i, s, got, want)
		}
	})
}

// fuzzTables are B's table and the fuzz keys' (multiples of −A), with
// their Point-based references.
var fuzzTables = sync.OnceValues(func() ([]*table, []*pointTable) {
	nt, rt := []*table{base()}, []*pointTable{refBase()}
	for _, v := range fuzzKeys() {
		a, err := new(edwards25519.Point).SetBytes(v.PublicKey())
		if err != nil {
			panic(err)
		}
		neg := new(edwards25519.Point).Negate(a)
		nt, rt = append(nt, v.negKey), append(rt, newPointTable(neg))
	}
	return nt, rt
})
