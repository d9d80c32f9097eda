package service

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/signerd/signerd/internal/keystore"
	"github.com/signerd/signerd/internal/skill"
)

// BenchmarkSign measures Sign and SignSkill in process: the service's own
// work per signature (the check of the signature, the document, the
// record and audit event and their group commit on a real bbolt file),
// with in-memory keys instead of the HSM. 8 goroutines per core, as the
// daemon's callers arrive. The wall time per operation is bound by fsync;
// cpu-µs/op (user + system time of the process) is the figure to compare.
func BenchmarkSign(b *testing.B) {
	b.Run("ed25519", func(b *testing.B) {
		f := newFixture(b)
		f.createKey(b, "rel", keystore.Ed25519)
		var n atomic.Uint64
		b.SetParallelism(8)
		defer reportCPU(b)()
		b.ResetTimer()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				d := sha256.Sum256(binary.BigEndian.AppendUint64(nil, n.Add(1)))
				if _, err := f.svc.Sign(f.ctx, SignInput{KeyName: "rel", Digest: d[:], ArtifactName: "bench"}); err != nil {
					b.Error(err)
					return
				}
			}
		})
	})
	b.Run("ecdsa-p256", func(b *testing.B) {
		f := newFixture(b)
		f.createKey(b, "sk", keystore.ECDSAP256)
		var n atomic.Uint64
		b.SetParallelism(8)
		defer reportCPU(b)()
		b.ResetTimer()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				d := sha256.Sum256(binary.BigEndian.AppendUint64(nil, n.Add(1)))
				files := map[string]string{"SKILL.md": skill.FingerprintPrefix + hex.EncodeToString(d[:])}
				root, err := skill.ComputeRoot(files)
				if err != nil {
					b.Error(err)
					return
				}
				if _, err := f.svc.SignSkill(f.ctx, SignSkillInput{KeyName: "sk", Root: root[:], Manifest: files, Domain: "bench.example.com", SkillName: "bench-skill"}); err != nil {
					b.Error(err)
					return
				}
			}
		})
	})
}

// reportCPU reports the process's CPU time per operation from now until
// the returned function runs.
func reportCPU(b *testing.B) func() {
	start := processCPU()
	return func() {
		b.ReportMetric(float64(processCPU()-start)/float64(time.Microsecond)/float64(b.N), "cpu-µs/op")
	}
}

func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
