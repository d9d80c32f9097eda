package edcheck

import (
	"crypto/ed25519"
	"crypto/rand"
	"testing"

	"filippo.io/edwards25519"
)

func BenchmarkVerify(b *testing.B) {
	pub, priv, _ := ed25519.GenerateKey(rand.Reader)
	msg := make([]byte, 32)
	sig := ed25519.Sign(priv, msg)
	v, err := NewVerifier(pub)
	if err != nil {
		b.Fatal(err)
	}
	b.Run("edcheck", func(b *testing.B) {
		for b.Loop() {
			if !v.Verify(msg, sig) {
				b.Fatal("refused")
			}
		}
	})
	b.Run("crypto-ed25519", func(b *testing.B) {
		for b.Loop() {
			if !ed25519.Verify(pub, msg, sig) {
				b.Fatal("refused")
			}
		}
	})
	b.Run("new-verifier", func(b *testing.B) {
		for b.Loop() {
			if _, err := NewVerifier(pub); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkMulAdd compares a table's summation with its Point-based
// predecessor (reference_test.go), for a scalar of 32 nonzero digits.
func BenchmarkMulAdd(b *testing.B) {
	s := fill(0x5a, 0x0a) // digits 0x5a, no carries: every position adds
	d := digits(s[:])
	g := edwards25519.NewGeneratorPoint()
	b.Run("niels", func(b *testing.B) {
		t := newTable(g)
		for b.Loop() {
			var acc extended
			t.mulAdd(acc.identity(), &d)
		}
	})
	b.Run("point-reference", func(b *testing.B) {
		t := newPointTable(g)
		for b.Loop() {
			t.mulAdd(edwards25519.NewIdentityPoint(), &d)
		}
	})
}
