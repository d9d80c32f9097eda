package storetest

import (
	"context"
	"fmt"
	"sync"
	"testing"

	"github.com/signerd/signerd/internal/store"
)

// testConcurrentPutSignature is the group-commit path under load: every
// record must land, and the audit chain must come out as one sequence with
// no seq used twice, however the backend batches.
func testConcurrentPutSignature(t *testing.T, s store.Store) {
	const workers = 64
	ctx := context.Background()
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for i := range workers {
		wg.Go(func() {
			rec := sigRecord(digest(fmt.Sprint(i%8)), fmt.Sprintf("k%d", i), i)
			errs <- s.PutSignature(ctx, rec, sigEvent(rec))
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		must(t, "concurrent PutSignature", err)
	}

	seen := map[string]bool{}
	for d := range 8 {
		recs, err := s.SignaturesByDigest(ctx, digest(fmt.Sprint(d)))
		must(t, "SignaturesByDigest", err)
		if len(recs) != workers/8 {
			t.Fatalf("digest %d has %d records, want %d", d, len(recs), workers/8)
		}
		for _, r := range recs {
			seen[r.KeyName] = true
		}
	}
	if len(seen) != workers {
		t.Fatalf("%d distinct records stored, want %d", len(seen), workers)
	}

	recs := audit(t, s) // verifies the chain
	if len(recs) != workers {
		t.Fatalf("%d audit records, want %d", len(recs), workers)
	}
	keys := map[string]bool{}
	for i, r := range recs {
		if r.Seq != uint64(i+1) {
			t.Fatalf("audit record %d has seq %d", i+1, r.Seq)
		}
		keys[r.Key] = true
	}
	if len(keys) != workers {
		t.Fatalf("audit records name %d distinct keys, want %d", len(keys), workers)
	}
}

// testConcurrentMixed runs every kind of writer at once: read-modify-write
// of one org must lose no update, and all writers share one chain.
func testConcurrentMixed(t *testing.T, s store.Store) {
	const n = 16
	ctx := context.Background()
	var wg sync.WaitGroup
	errs := make(chan error, 4*n)
	for i := range n {
		wg.Go(func() {
			rec := sigRecord(digest("mixed"), fmt.Sprintf("s%d", i), i)
			errs <- s.PutSignature(ctx, rec, sigEvent(rec))
		})
		wg.Go(func() {
			_, err := s.AppendAudit(ctx, ev("verify"))
			errs <- err
		})
		wg.Go(func() {
			errs <- s.TrustKey(ctx, "acme", trusted(fmt.Sprintf("t%d", i), i), ev("trust.add"))
		})
		wg.Go(func() {
			errs <- s.CreateKey(ctx, newKey(fmt.Sprintf("k%d", i)), ev("key.create"))
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		must(t, "concurrent write", err)
	}

	if o := getOrg(t, s, "acme"); len(o.Trusted) != n {
		t.Fatalf("org trusts %d keys after %d concurrent TrustKey calls", len(o.Trusted), n)
	}
	keys, err := s.ListKeys(ctx)
	must(t, "ListKeys", err)
	if len(keys) != n {
		t.Fatalf("%d keys after %d concurrent CreateKey calls", len(keys), n)
	}
	sigs, err := s.SignaturesByDigest(ctx, digest("mixed"))
	must(t, "SignaturesByDigest", err)
	if len(sigs) != n {
		t.Fatalf("%d signatures after %d concurrent PutSignature calls", len(sigs), n)
	}
	if recs := audit(t, s); len(recs) != 4*n {
		t.Fatalf("%d audit records, want %d", len(recs), 4*n)
	}
}
