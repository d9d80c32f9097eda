package boltstore

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"path/filepath"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"github.com/signerd/signerd/internal/store"
)

func BenchmarkScratchDelay(b *testing.B) {
	for _, delay := range []time.Duration{100 * time.Microsecond, 500 * time.Microsecond, time.Millisecond, 2 * time.Millisecond, 5 * time.Millisecond, 10 * time.Millisecond} {
		for _, callers := range []int{1, 64} {
			b.Run(fmt.Sprintf("delay=%v/callers=%d", delay, callers), func(b *testing.B) {
				ctx := context.Background()
				s, _ := Open(ctx, filepath.Join(b.TempDir(), "db"), Options{MaxBatchDelay: delay})
				defer s.Close()
				var n atomic.Uint64
				put := func() {
					i := n.Add(1)
					d := sha256.Sum256(binary.BigEndian.AppendUint64(nil, i))
					rec := store.SignatureRecord{Digest: d[:], Format: store.FormatCloacina, KeyName: "r", Fingerprint: "f", Signature: bytes.Repeat([]byte{1}, 64), Document: bytes.Repeat([]byte{'x'}, 300)}
					if err := s.PutSignature(ctx, rec, store.AuditEvent{Operation: "sign"}); err != nil {
						b.Error(err)
					}
				}
				start := lastTxID(b, s)
				if callers == 1 {
					for b.Loop() {
						put()
					}
				} else {
					b.SetParallelism((callers + runtime.GOMAXPROCS(0) - 1) / runtime.GOMAXPROCS(0))
					b.RunParallel(func(pb *testing.PB) {
						for pb.Next() {
							put()
						}
					})
				}
				b.ReportMetric(float64(lastTxID(b, s)-start)/float64(b.N), "commits/op")
			})
		}
	}
}
