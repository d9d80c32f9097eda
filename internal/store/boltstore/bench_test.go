package boltstore

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"path/filepath"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/signerd/signerd/internal/store"
)

// lastTxID is the id of the last committed write transaction: every commit
// increments it, so its growth counts commits. Each bbolt commit calls
// fdatasync twice (data pages, then the meta page).
func lastTxID(b *testing.B, s *Store) int {
	var id int
	if err := s.db.View(func(tx *bolt.Tx) error { id = tx.ID(); return nil }); err != nil {
		b.Fatal(err)
	}
	return id
}

// BenchmarkPutSignatureParallel measures PutSignature from many concurrent
// callers, as the daemon sees it under a build farm, against one caller at
// a time. commits/op below 1 is group commit at work: one transaction and
// one pair of fsyncs serve several signatures.
func BenchmarkPutSignatureParallel(b *testing.B) {
	for _, callers := range []int{1, 8, 64} {
		b.Run(fmt.Sprintf("callers=%d", callers), func(b *testing.B) {
			ctx := context.Background()
			s, err := Open(ctx, filepath.Join(b.TempDir(), "db"), Options{})
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			var n atomic.Uint64
			put := func() { benchPut(ctx, b, s, n.Add(1)) }
			start := lastTxID(b, s)
			b.ResetTimer()
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
			b.StopTimer()
			commits := float64(lastTxID(b, s) - start)
			b.ReportMetric(commits/float64(b.N), "commits/op")
			b.ReportMetric(2*commits/float64(b.N), "fsyncs/op")
		})
	}
}

// BenchmarkPutSignatureFilled is PutSignature from 32 concurrent callers
// into a store that already holds prefill signatures, as a daemon's store
// does after a while: random digests then dirty a different page of each
// digest-keyed bucket for nearly every signature. It reports the process's
// CPU per signature (user + system, fsync's kernel work included) and the
// pages each commit writes.
func BenchmarkPutSignatureFilled(b *testing.B) {
	for _, mergeAt := range []int{8192, 32768} {
		b.Run(fmt.Sprintf("merge=%d", mergeAt), func(b *testing.B) { benchPutFilled(b, mergeAt) })
	}
}

func benchPutFilled(b *testing.B, mergeAt int) {
	const prefill, callers = 100_000, 32
	ctx := context.Background()
	s, err := Open(ctx, filepath.Join(b.TempDir(), "db"), Options{MaxBatchSize: 4096, IndexMergeAt: mergeAt})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	var n atomic.Uint64
	put := func() { benchPut(ctx, b, s, n.Add(1)) }
	var wg sync.WaitGroup
	for range 512 {
		wg.Go(func() {
			for n.Load() < prefill {
				put()
			}
		})
	}
	wg.Wait()
	runtime.GC()
	start, st0, cpu0 := lastTxID(b, s), s.db.Stats(), rusageCPU(b)
	b.ResetTimer()
	b.SetParallelism((callers + runtime.GOMAXPROCS(0) - 1) / runtime.GOMAXPROCS(0))
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			put()
		}
	})
	b.StopTimer()
	st1 := s.db.Stats()
	cpu, st := rusageCPU(b)-cpu0, st1.Sub(&st0)
	commits := float64(lastTxID(b, s) - start)
	b.ReportMetric(float64(cpu.Microseconds())/float64(b.N), "cpu-µs/op")
	b.ReportMetric(float64(b.N)/commits, "sigs/commit")
	b.ReportMetric(float64(st.TxStats.GetWrite())/commits, "pages/commit")
}

func rusageCPU(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// benchPut records the i-th benchmark signature: a random-looking digest
// and signature, as real ones are, and a Cloacina-sized document.
func benchPut(ctx context.Context, b *testing.B, s *Store, i uint64) {
	d := sha256.Sum256(binary.BigEndian.AppendUint64(nil, i))
	sig := sha256.Sum256(d[:])
	rec := store.SignatureRecord{
		Digest: d[:], Format: store.FormatCloacina, KeyName: "release", KeyVersion: 1,
		Fingerprint: "3f1d", Algorithm: "ed25519", Signature: append(sig[:], sig[:]...),
		SignedAt: time.Now(), Document: bytes.Repeat([]byte{'x'}, 300),
	}
	ev := store.AuditEvent{Caller: "uid:1000", Operation: "sign", Key: "release@v1", Outcome: "ok", Detail: "artifact=a"}
	if err := s.PutSignature(ctx, rec, ev); err != nil {
		b.Error(err)
	}
}

// BenchmarkOpenPending is Open of a store whose last run left as many
// records outside the digest index as signers may leave before they wait
// for a merge (throttleFactor × defaultMergeAt): the most a start reads
// back while merges succeed.
func BenchmarkOpenPending(b *testing.B) {
	const callers = 256
	pending := uint64(throttleFactor * defaultMergeAt)
	ctx := context.Background()
	path := filepath.Join(b.TempDir(), "db")
	// A threshold above the fill: nothing is merged while it runs.
	s, err := Open(ctx, path, Options{MaxBatchSize: 4096, IndexMergeAt: int(pending) + 1})
	if err != nil {
		b.Fatal(err)
	}
	var n atomic.Uint64
	var wg sync.WaitGroup
	for range callers {
		wg.Go(func() {
			for i := n.Add(1); i <= pending; i = n.Add(1) {
				benchPut(ctx, b, s, i)
			}
		})
	}
	wg.Wait()
	crashClose(b, s) // Close would merge them
	b.ResetTimer()
	for range b.N {
		s, err := Open(ctx, path, Options{IndexMergeAt: int(pending) + 1})
		if err != nil {
			b.Fatal(err)
		}
		if got := s.idx.len(); got != int(pending) {
			b.Fatalf("%d entries pending after Open, want %d", got, pending)
		}
		b.StopTimer()
		crashClose(b, s)
		b.StartTimer()
	}
	b.ReportMetric(float64(pending), "records")
}
