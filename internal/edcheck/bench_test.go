package edcheck

import (
	"crypto/ed25519"
	"crypto/rand"
	"testing"
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
