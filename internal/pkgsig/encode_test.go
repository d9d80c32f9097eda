package pkgsig

import (
	"bytes"
	"crypto/ed25519"
	"math/rand/v2"
	"testing"
	"time"
)

// TestEncodeFastPath holds Encode's direct writer to encoding/json's
// output: real documents, and documents whose fields hold what JSON
// escapes (quotes, backslashes, control bytes, HTML characters, U+2028,
// invalid UTF-8, DEL), which must take the encoding/json path.
func TestEncodeFastPath(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	pieces := []string{"a", "Z", "0", "+", "/", "=", ":", ".", " ", "-", "\"", "\\", "\n", "\t", "\x00", "\x1f", "\x7f", "<", ">", "&", "é", "\u2028", "\xff", "ed25519"}
	word := func() string {
		var b []byte
		for range rng.IntN(8) {
			b = append(b, pieces[rng.IntN(len(pieces))]...)
		}
		return string(b)
	}
	_, priv, err := ed25519.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	var fast, slow int
	for i := range 5000 {
		var d Document
		if i%2 == 0 {
			var digest [DigestSize]byte
			digest[0] = byte(i)
			d = NewDocument(digest, priv.Public().(ed25519.PublicKey), ed25519.Sign(priv, digest[:]), time.Unix(int64(i)*7919, int64(i)*1_000_000).UTC())
		} else {
			d = Document{Version: rng.IntN(5) - 1, Algorithm: word(), PackageHash: word(), KeyFingerprint: word(), Signature: word(), SignedAt: word()}
		}
		got, want := d.Encode(), d.encodeJSON()
		if !bytes.Equal(got, want) {
			t.Fatalf("document %+v:\nEncode     %q\nencodeJSON %q", d, got, want)
		}
		if plainJSON(d.Algorithm) && plainJSON(d.PackageHash) && plainJSON(d.KeyFingerprint) && plainJSON(d.Signature) && plainJSON(d.SignedAt) {
			fast++
		} else {
			slow++
		}
	}
	if fast < 2500 || slow == 0 {
		t.Fatalf("the test reached the direct writer %d times and encoding/json %d times", fast, slow)
	}
}

func BenchmarkEncode(b *testing.B) {
	_, priv, _ := ed25519.GenerateKey(nil)
	var digest [DigestSize]byte
	d := NewDocument(digest, priv.Public().(ed25519.PublicKey), ed25519.Sign(priv, digest[:]), time.Now())
	b.Run("direct", func(b *testing.B) {
		for b.Loop() {
			d.Encode()
		}
	})
	b.Run("encoding-json", func(b *testing.B) {
		for b.Loop() {
			d.encodeJSON()
		}
	})
}
