package skill

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"math/big"
	"testing"
)

// BenchmarkParseDERSignature parses one real signature per curve (P-256 and
// P-384 have a short-form SEQUENCE length, P-521 a long-form one) with
// parseDERSignature and, for comparison on the same machine and load, with
// the encoding/asn1 reference it replaced.
func BenchmarkParseDERSignature(b *testing.B) {
	impls := []struct {
		name  string
		parse func([]byte) (*big.Int, *big.Int, bool, error)
	}{
		{"parseDERSignature", parseDERSignature},
		{"asn1-reference", referenceParseDERSignature},
	}
	for _, c := range []elliptic.Curve{elliptic.P256(), elliptic.P384(), elliptic.P521()} {
		key, err := ecdsa.GenerateKey(c, rand.Reader)
		if err != nil {
			b.Fatal(err)
		}
		der, err := ecdsa.SignASN1(rand.Reader, key, make([]byte, 32))
		if err != nil {
			b.Fatal(err)
		}
		for _, impl := range impls {
			b.Run(c.Params().Name+"/"+impl.name, func(b *testing.B) {
				b.ReportAllocs()
				for b.Loop() {
					if _, _, canonical, err := impl.parse(der); err != nil || !canonical {
						b.Fatal(canonical, err)
					}
				}
			})
		}
	}
}
