package bench

// The verifiable log's proof cost (issue #16): the real bbolt store filled
// with a million audit records through its group-committed append (many
// concurrent AppendAudit calls share each commit, as the daemon's
// signatures do), then inclusion and consistency proofs at that size, each
// timed alone. A proof is O(log n) node reads (internal/store/tree.go); the
// target is under 1 ms each, reported as the median per repetition over
// one millisecond (ratio <= 1). Every repetition also checks some of the
// proofs it timed against the store's root with transparency-dev/merkle,
// so a fast wrong answer cannot pass.

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"

	"github.com/signerd/signerd/internal/store"
	"github.com/signerd/signerd/internal/store/boltstore"
)

// logLeaves is the size of the benchmark's log (the smoke run: a
// miniature; the names stay the same).
func (c config) logLeaves() uint64 {
	if c.smoke {
		return 4096
	}
	return 1 << 20
}

// logSamples is the proofs timed per repetition.
func (c config) logSamples() int {
	if c.smoke {
		return 64
	}
	return 2000
}

func (s *suite) logProofs() []result {
	t := s.t
	ctx := context.Background()
	st, err := boltstore.Open(ctx, filepath.Join(t.TempDir(), "log.db"), boltstore.Options{MaxBatchSize: 4096})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()

	n := s.cfg.logLeaves()
	start := time.Now()
	fillLog(t, ctx, st, n)
	fillSecs := time.Since(start).Seconds()
	if size, err := st.LogSize(ctx); err != nil || size != n {
		t.Fatalf("log size %d (%v) after appending %d records", size, err, n)
	}
	s.logf("log: %d records appended in %.1fs (%.0f/s)", n, fillSecs, float64(n)/fillSecs)
	fill := &point{name: "log-fill-1m-leaves", unit: "records/s",
		note: fmt.Sprintf("%d audit records appended to a fresh bbolt store by 1024 concurrent AppendAudit calls (group commits)", n)}
	fill.addValue(float64(n) / fillSecs)

	root, err := st.LogRoot(ctx, n)
	if err != nil {
		t.Fatal(err)
	}
	incl := &point{name: "log-inclusion-proof-1m-leaves", unit: "µs", baseline: "one-millisecond", target: 1, cmp: "<=",
		note: fmt.Sprintf("median time of one InclusionProof(random leaf, %d) from the bbolt store; ratio = median / 1000 µs", n)}
	cons := &point{name: "log-consistency-proof-1m-leaves", unit: "µs", baseline: "one-millisecond", target: 1, cmp: "<=",
		note: fmt.Sprintf("median time of one ConsistencyProof(random size, %d) from the bbolt store; ratio = median / 1000 µs", n)}
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 16))
	for range s.cfg.reps {
		var ti, tc []float64
		for i := range s.cfg.logSamples() {
			idx := rng.Uint64N(n)
			t0 := time.Now()
			p, err := st.InclusionProof(ctx, idx, n)
			ti = append(ti, float64(time.Since(t0).Nanoseconds())/1e3)
			if err != nil {
				t.Fatal(err)
			}
			if i%100 == 0 {
				checkInclusion(t, ctx, st, idx, n, p, root)
			}
			m := 1 + rng.Uint64N(n-1)
			t0 = time.Now()
			c, err := st.ConsistencyProof(ctx, m, n)
			tc = append(tc, float64(time.Since(t0).Nanoseconds())/1e3)
			if err != nil {
				t.Fatal(err)
			}
			if i%100 == 0 {
				r1, err := st.LogRoot(ctx, m)
				if err != nil {
					t.Fatal(err)
				}
				if err := proof.VerifyConsistency(rfc6962.DefaultHasher, m, n, c, r1, root); err != nil {
					t.Fatalf("consistency proof %d to %d: %v", m, n, err)
				}
			}
		}
		mi, mc := median(ti), median(tc)
		incl.add(mi, 1000, mi/1000)
		cons.add(mc, 1000, mc/1000)
	}
	s.logf("log: inclusion proof %.1f µs, consistency proof %.1f µs (medians) at %d leaves", median(incl.values), median(cons.values), n)
	return []result{fill.result(), incl.result(), cons.result()}
}

// checkInclusion checks one timed proof: the leaf's record from the store,
// its proof, the store's root.
func checkInclusion(t interface{ Fatalf(string, ...any) }, ctx context.Context, st *boltstore.Store, idx, n uint64, p [][]byte, root []byte) {
	recs, err := st.ListAudit(ctx, idx, 1)
	if err != nil || len(recs) != 1 {
		t.Fatalf("record %d: %v", idx+1, err)
	}
	if err := proof.VerifyInclusion(rfc6962.DefaultHasher, idx, n, store.LeafHash(recs[0]), p, root); err != nil {
		t.Fatalf("inclusion proof of leaf %d in %d: %v", idx, n, err)
	}
}

// fillLog appends n signature records through concurrent AppendAudit calls,
// which the store groups into commits of up to its MaxBatchSize.
func fillLog(t interface{ Fatalf(string, ...any) }, ctx context.Context, st *boltstore.Store, n uint64) {
	const workers = 1024
	var next atomic.Uint64
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	now := time.Now().UTC()
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := next.Add(1)
				if i > n {
					return
				}
				var b [8]byte
				binary.BigEndian.PutUint64(b[:], i)
				d := sha256.Sum256(b[:])
				sig := append(d[:], d[:]...) // 64 bytes, the size of an Ed25519 signature
				ev := store.AuditEvent{Time: now, Caller: "uid:1000", Operation: "sign", Key: "release",
					Digest: fmt.Sprintf("%x", d), Outcome: "ok", Signature: sig}
				if _, err := st.AppendAudit(ctx, ev); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		t.Fatalf("append: %v", err)
	}
}
