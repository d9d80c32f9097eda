package service

import (
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/signerd/signerd/internal/errdefs"
	"github.com/signerd/signerd/internal/keystore"
	"github.com/signerd/signerd/internal/logproof"
	"github.com/signerd/signerd/internal/pkgsig"
	"github.com/signerd/signerd/internal/store"
	"github.com/signerd/signerd/internal/testutil/rfc9162"
)

// logFixture is a service with its audit and log keys and a log of more
// than one page of leaves.
func logFixture(t *testing.T, extra int) *fixture {
	t.Helper()
	f := newFixture(t)
	if _, err := f.svc.EnsureAuditKey(f.ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := f.svc.EnsureLogKey(f.ctx); err != nil {
		t.Fatal(err)
	}
	// Concurrent appends share group commits: a big log, quickly.
	var wg sync.WaitGroup
	errs := make(chan error, extra)
	for i := range extra {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := f.st.AppendAudit(f.ctx, store.AuditEvent{Time: time.Now(), Caller: "uid:test", Operation: "denied", Outcome: "denied", Detail: fmt.Sprint(i)})
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	return f
}

// TestLogLeavesBounded shows ListLeaves' bound: whatever the limit asked,
// one call reads and returns at most MaxLogLeavesPage leaves; and every
// leaf reads back, with signctl's decoder, as the record it encodes.
func TestLogLeavesBounded(t *testing.T) {
	f := logFixture(t, MaxLogLeavesPage+200)
	size, err := f.st.LogSize(f.ctx)
	if err != nil || size <= MaxLogLeavesPage {
		t.Fatalf("log size %d (%v)", size, err)
	}
	for _, tc := range []struct {
		start uint64
		limit int
		want  int
	}{
		{0, 0, MaxLogLeavesPage},
		{0, -1, MaxLogLeavesPage},
		{0, 1 << 30, MaxLogLeavesPage},
		{0, 10, 10},
		{size - 3, 1 << 30, 3},
		{size, 10, 0},
		{size + 1000, 10, 0},
	} {
		leaves, gotSize, err := f.svc.LogLeaves(f.ctx, tc.start, tc.limit)
		if err != nil || len(leaves) != tc.want || gotSize != size {
			t.Errorf("LogLeaves(%d, %d) = %d leaves of %d, %v; want %d of %d", tc.start, tc.limit, len(leaves), gotSize, err, tc.want, size)
		}
	}
	leaves, _, err := f.svc.LogLeaves(f.ctx, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	recs, err := f.st.ListAudit(f.ctx, 0, len(leaves))
	if err != nil {
		t.Fatal(err)
	}
	for i, leaf := range leaves {
		r, err := logproof.ParseLeaf(leaf)
		want := recs[i]
		if err != nil || r.Seq != want.Seq || r.Operation != want.Operation || r.Caller != want.Caller ||
			r.Detail != want.Detail || r.Time != want.Time.UTC().Format(time.RFC3339Nano) || string(r.PrevHash) != string(want.PrevHash) {
			t.Fatalf("leaf %d reads as %+v (%v), the record is %+v", i, r, err, want)
		}
	}
}

func TestLogSignatureProof(t *testing.T) {
	f := logFixture(t, 20)
	f.createKey(t, "release", keystore.Ed25519)
	digest, doc := f.sign(t, "release", "package bytes")
	f.sign(t, "release", "other bytes")
	sig, err := pkgsig.Parse(doc)
	if err != nil {
		t.Fatal(err)
	}
	b, err := f.svc.LogSignatureProof(f.ctx, digest, sig.Sig)
	if err != nil {
		t.Fatal(err)
	}
	// signctl's checks and the independent RFC 9162 verifier agree.
	vkey, err := f.svc.LogVerifierKey(f.ctx)
	if err != nil {
		t.Fatal(err)
	}
	v, err := logproof.Verifier(vkey)
	if err != nil {
		t.Fatal(err)
	}
	lb := logproof.Bundle{Origin: b.Origin, Leaf: b.Leaf, LeafIndex: b.LeafIndex, TreeSize: b.TreeSize, InclusionProof: b.InclusionProof, Checkpoint: string(b.Checkpoint)}
	cp, err := lb.Verify(v)
	if err != nil {
		t.Fatalf("bundle: %v", err)
	}
	if err := rfc9162.VerifyInclusion(b.LeafIndex, b.TreeSize, rfc9162.LeafHash(b.Leaf), b.InclusionProof, cp.Root); err != nil {
		t.Fatalf("independent check: %v", err)
	}
	rec, err := logproof.ParseLeaf(b.Leaf)
	if err != nil {
		t.Fatal(err)
	}
	if err := rec.MatchSignature(b.LeafIndex, digest, sig.Sig); err != nil {
		t.Fatalf("the leaf is not the signature's record: %v", err)
	}
	// Verify names the signature it accepted, so a loader gets this proof.
	f.trust(t, "acme", "release")
	res, err := f.svc.Verify(f.ctx, VerifyInput{Org: "acme", Digest: digest, Document: doc})
	if err != nil || string(res.Signature) != string(sig.Sig) || string(res.Digest) != string(digest) {
		t.Fatalf("Verify = %+v, %v", res, err)
	}

	size, err := f.st.LogSize(f.ctx)
	if err != nil {
		t.Fatal(err)
	}
	other := append([]byte{}, sig.Sig...)
	other[0] ^= 1
	for _, tc := range []struct {
		name string
		call func() error
		want error
	}{
		{"unknown signature", func() error { _, err := f.svc.LogSignatureProof(f.ctx, digest, other); return err }, errdefs.ErrNotFound},
		{"short digest", func() error { _, err := f.svc.LogSignatureProof(f.ctx, digest[:31], sig.Sig); return err }, errdefs.ErrInvalidArgument},
		{"no signature", func() error { _, err := f.svc.LogSignatureProof(f.ctx, digest, nil); return err }, errdefs.ErrInvalidArgument},
		{"leaf past the log", func() error { _, err := f.svc.LogInclusionProof(f.ctx, size+5, 0); return err }, errdefs.ErrFailedPrecondition},
		{"size of no checkpoint", func() error { _, err := f.svc.LogInclusionProof(f.ctx, 0, 3); return err }, errdefs.ErrFailedPrecondition},
		{"checkpoint past the log", func() error { _, err := f.svc.LogCheckpointAtLeast(f.ctx, size+1); return err }, errdefs.ErrFailedPrecondition},
		{"consistency from 0", func() error { _, err := f.svc.LogConsistencyProof(f.ctx, 0, size); return err }, errdefs.ErrInvalidArgument},
		{"consistency past the log", func() error { _, err := f.svc.LogConsistencyProof(f.ctx, 1, size+1); return err }, errdefs.ErrInvalidArgument},
		{"consistency backwards", func() error { _, err := f.svc.LogConsistencyProof(f.ctx, 5, 4); return err }, errdefs.ErrInvalidArgument},
	} {
		if err := tc.call(); !errors.Is(err, tc.want) {
			t.Errorf("%s: %v, want %v", tc.name, err, tc.want)
		}
	}
}

// TestLogCheckpointsOnDemandBounded shows the bound on what a verifier can
// make the daemon sign and store by asking for proofs: a checkpoint on
// demand is signed only when the latest does not cover the leaves asked
// for, so however many calls, at most one checkpoint per growth of the log.
func TestLogCheckpointsOnDemandBounded(t *testing.T) {
	f := logFixture(t, 5)
	count := func() int {
		cps, err := f.st.ListCheckpoints(f.ctx)
		if err != nil {
			t.Fatal(err)
		}
		return len(cps)
	}
	for round := range 3 {
		size, err := f.st.LogSize(f.ctx)
		if err != nil {
			t.Fatal(err)
		}
		before := count()
		for range 50 {
			if _, err := f.svc.LogCheckpointAtLeast(f.ctx, size); err != nil {
				t.Fatal(err)
			}
			if _, err := f.svc.LogInclusionProof(f.ctx, size-1, 0); err != nil {
				t.Fatal(err)
			}
		}
		if got := count() - before; got != 1 {
			t.Fatalf("round %d: 100 calls at log size %d signed %d checkpoints, want 1", round, size, got)
		}
		if _, err := f.st.AppendAudit(f.ctx, store.AuditEvent{Time: time.Now(), Caller: "uid:test", Operation: "denied", Outcome: "denied"}); err != nil {
			t.Fatal(err)
		}
	}
}

// TestLogProofsMatchIndependentTree compares every root, inclusion proof
// and consistency proof the store makes for a small log, at every size,
// with the independent RFC 9162 implementation's: equal hashes, not only
// proofs that verify.
func TestLogProofsMatchIndependentTree(t *testing.T) {
	f := logFixture(t, 40)
	n, err := f.st.LogSize(f.ctx)
	if err != nil {
		t.Fatal(err)
	}
	if n < 40 {
		t.Fatalf("a log of %d leaves", n)
	}
	recs, err := f.st.ListAudit(f.ctx, 0, int(n))
	if err != nil || uint64(len(recs)) != n {
		t.Fatalf("%d records of %d: %v", len(recs), n, err)
	}
	var hashes [][]byte
	for _, r := range recs {
		hashes = append(hashes, rfc9162.LeafHash(store.EncodeAuditRecord(r)))
	}
	same := func(a, b [][]byte) bool {
		if len(a) != len(b) {
			return false
		}
		for i := range a {
			if string(a[i]) != string(b[i]) {
				return false
			}
		}
		return true
	}
	for size := uint64(1); size <= n; size++ {
		root, err := f.st.LogRoot(f.ctx, size)
		if err != nil || string(root) != string(rfc9162.Root(hashes[:size])) {
			t.Fatalf("root of %d: %x (%v), want %x", size, root, err, rfc9162.Root(hashes[:size]))
		}
		for i := uint64(0); i < size; i++ {
			p, err := f.st.InclusionProof(f.ctx, i, size)
			if err != nil || !same(p, rfc9162.InclusionProof(hashes[:size], int(i))) {
				t.Fatalf("inclusion of %d in %d: %x (%v)", i, size, p, err)
			}
		}
		for m := uint64(1); m <= size; m++ {
			p, err := f.st.ConsistencyProof(f.ctx, m, size)
			if err != nil || !same(p, rfc9162.ConsistencyProof(hashes[:size], int(m))) {
				t.Fatalf("consistency %d to %d: %x (%v)", m, size, p, err)
			}
		}
	}
}
