package edcheck

import (
	"crypto/rand"
	"testing"

	"filippo.io/edwards25519/field"
)

// TestInvertVarTime: the variable-time inverse is field.Element.Invert's
// on edge values (0 → 0, 1, −1, 2^255 − 20 = −1 as bytes, the largest
// non-canonical encodings) and on random ones.
func TestInvertVarTime(t *testing.T) {
	enc := func(b ...byte) []byte { e := make([]byte, 32); copy(e, b); return e }
	ff := make([]byte, 32)
	for i := range ff {
		ff[i] = 0xff // 2^256 − 1: SetBytes drops the top bit, 2^255 − 1 ≡ 18
	}
	pMinus1 := enc(0xec)
	for i := 1; i < 31; i++ {
		pMinus1[i] = 0xff
	}
	pMinus1[31] = 0x7f
	cases := [][]byte{enc(), enc(1), enc(2), enc(19), pMinus1, ff}
	for range 500 {
		b := make([]byte, 32)
		if _, err := rand.Read(b); err != nil {
			t.Fatal(err)
		}
		cases = append(cases, b)
	}
	for _, b := range cases {
		var z, want, got field.Element
		if _, err := z.SetBytes(b); err != nil {
			t.Fatal(err)
		}
		want.Invert(&z)
		invertVarTime(&got, &z)
		if got.Equal(&want) != 1 {
			t.Fatalf("invertVarTime(%x) = %x, Invert = %x", b, got.Bytes(), want.Bytes())
		}
	}
}
