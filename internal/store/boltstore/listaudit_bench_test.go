package boltstore

import (
	"context"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
)

// BenchmarkListAudit reads 10,000 signatures' audit records, as an audit
// checkpoint does after a few seconds at full load: almost all of its CPU
// is decoding the records (store.DecodeAuditRecordJSON).
func BenchmarkListAudit(b *testing.B) {
	const records = 10_000
	ctx := context.Background()
	s, err := Open(ctx, filepath.Join(b.TempDir(), "db"), Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	s.db.NoSync = true // only the fill writes; its durability is beside the point
	var n atomic.Uint64
	var wg sync.WaitGroup
	for range 256 {
		wg.Go(func() {
			for i := n.Add(1); i <= records; i = n.Add(1) {
				benchPut(ctx, b, s, i)
			}
		})
	}
	wg.Wait()
	b.ReportAllocs()
	for b.Loop() {
		recs, err := s.ListAudit(ctx, 0, 0)
		if err != nil || len(recs) < records {
			b.Fatalf("%d records, %v", len(recs), err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*records), "ns/record")
}
