//go:build cgo

package pkcs11_test

import (
	"crypto/rand"
	"testing"

	"github.com/signerd/signerd/internal/keystore"
	"github.com/signerd/signerd/internal/testutil/softhsm"
)

// The in-process signing rate of one SoftHSM2 library: the ceiling the
// daemon's Sign RPC is measured against (DESIGN.md, performance budget).
// Parallel, with the default pool of 8 sessions, as the daemon runs it.
func BenchmarkSignEd25519(b *testing.B) { benchmarkSign(b, keystore.Ed25519) }

// BenchmarkSignECDSA signs SHA-256 digests with a P-256 key (CKM_ECDSA).
func BenchmarkSignECDSA(b *testing.B) { benchmarkSign(b, keystore.ECDSAP256) }

func benchmarkSign(b *testing.B, alg keystore.Algorithm) {
	tok := softhsm.NewToken(b)
	ks := open(b, tok)
	_, s := createKey(b, ks, alg)
	msg := make([]byte, 32) // a SHA-256 digest: what signerd signs for both formats
	_, _ = rand.Read(msg)
	in, opts := message(alg, msg)
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := s.Sign(nil, in, opts); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "sigs/s")
}
