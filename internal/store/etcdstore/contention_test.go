package etcdstore

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/signerd/signerd/internal/store"
	"github.com/signerd/signerd/internal/testutil/etcdtest"
)

// Tests of the committer's contention for the shared audit head
// (contention.go, turns.go). Everything is counted, nothing timed.

// TestConflictRetried: a replica that chains its batch to a head another
// replica has since moved (here: one without the head watch) has its
// transaction refused, counts one conflict, and commits on the new head
// on its next try; its record lands once, after the other's.
func TestConflictRetried(t *testing.T) {
	c := etcdtest.Start(t, 1, etcdtest.Options{})
	prefix := newPrefix()
	ctx := context.Background()
	a := openOn(t, newClient(t, c), prefix)
	b, err := Open(ctx, Options{Client: newClient(t, c), Prefix: prefix, noHeadWatch: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })

	if _, err := b.AppendAudit(ctx, ev("b.first")); err != nil { // b reads the head: seq 1
		t.Fatal(err)
	}
	for range 3 {
		if _, err := a.AppendAudit(ctx, ev("a")); err != nil { // seq 2..4, unseen by b
			t.Fatal(err)
		}
	}
	rec, err := b.AppendAudit(ctx, ev("b.second"))
	if err != nil {
		t.Fatal(err)
	}
	if rec.Seq != 5 {
		t.Fatalf("b's second record has seq %d, want 5", rec.Seq)
	}
	// Exact counts unless a transaction went unanswered within the
	// attempt timeout (a stalled machine): it is then resolved from the
	// log and counted as Unknown only, as the other contention tests allow.
	got := b.Contention()
	got.CommitTime = 0
	if want := (Contention{Txns: 3, Conflicts: 1, Commits: 2, Records: 2}); got.Unknown == 0 && got != want {
		t.Fatalf("b's counters %+v, want %+v", got, want)
	}
	if got.Refused != 0 || got.Txns != got.Commits+got.Conflicts+got.Unknown {
		t.Fatalf("b's counters %+v: want every transaction committed, conflicting or unanswered", got)
	}
	if ca := a.Contention(); ca.Conflicts != 0 || ca.Txns != ca.Commits+ca.Unknown || (ca.Unknown == 0 && ca.Records != 3) {
		t.Fatalf("a's counters %+v, want 3 transactions, 3 records, no conflict", ca)
	}
	checkLog(t, a, []string{"b.first", "a", "a", "a", "b.second"})
}

// TestLoneReplicaNeverWaits: one replica writing alone (another store on
// the prefix idle) neither conflicts nor waits for a turn, however many
// batches it commits.
func TestLoneReplicaNeverWaits(t *testing.T) {
	c := etcdtest.Start(t, 1, etcdtest.Options{})
	prefix := newPrefix()
	ctx := context.Background()
	a := openOn(t, newClient(t, c), prefix)
	_ = openOn(t, newClient(t, c), prefix)
	const n = 50
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Go(func() { errs <- a.PutSignature(ctx, sigRecord(i), ev("sign")) })
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	got := a.Contention()
	if got.Conflicts != 0 || got.Refused != 0 || got.Txns != got.Commits+got.Unknown || got.Records+uint64(got.Unknown) < n {
		t.Fatalf("counters %+v: want %d records, every transaction committed, no conflict", got, n)
	}
	// A transaction etcd did not answer makes the committer read the head
	// afresh, which it then takes for another's: only without one is no
	// turn ever waited for.
	if got.Unknown == 0 && got.TurnTimeouts != 0 {
		t.Fatalf("counters %+v: a lone replica waited for another's turn", got)
	}
}

// TestReplicasContendForHead: two replicas (each its own client and head
// watch) sign concurrently. Every write lands exactly once, the log is one
// gap-free chain of exactly as many records as writes, the two replicas'
// record counters add up to it, and every transaction either committed or
// lost the compare-and-swap and was retried (or went unanswered, and was
// resolved): Txns = Commits + Conflicts + Unknown on each replica.
func TestReplicasContendForHead(t *testing.T) {
	c := etcdtest.Start(t, 3, etcdtest.Options{})
	prefix := newPrefix()
	ctx := context.Background()
	replicas := []*Store{openOn(t, newClient(t, c), prefix), openOn(t, newClient(t, c), prefix)}
	const writers, each = 8, 25 // per replica
	var wg sync.WaitGroup
	errs := make(chan error, len(replicas)*writers*each)
	for r, s := range replicas {
		for w := range writers {
			wg.Go(func() {
				for i := range each {
					errs <- s.PutSignature(ctx, sigRecord((r*writers+w)*each+i), ev(fmt.Sprintf("sign.%d", r)))
				}
			})
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	total := len(replicas) * writers * each
	var records uint64
	for r, s := range replicas {
		got := s.Contention()
		t.Logf("replica %d: %+v", r, got)
		if got.Unknown == 0 && got.Records != uint64(writers*each) {
			t.Errorf("replica %d appended %d records, want %d", r, got.Records, writers*each)
		}
		if got.Refused != 0 || got.Txns != got.Commits+got.Conflicts+got.Unknown {
			t.Errorf("replica %d: %+v: some transaction neither committed, nor lost to another replica, nor went unanswered", r, got)
		}
		records += got.Records
	}
	if unknown := replicas[0].Contention().Unknown + replicas[1].Contention().Unknown; unknown == 0 && records != uint64(total) {
		t.Errorf("the replicas appended %d records in all, want %d", records, total)
	}
	for i := range total {
		got, err := replicas[0].SignaturesByDigest(ctx, sigRecord(i).Digest)
		if err != nil || len(got) != 1 {
			t.Fatalf("signature %d: %d records (%v), want exactly 1", i, len(got), err)
		}
	}
	recs, err := replicas[1].ListAudit(ctx, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	perOp := map[string]int{}
	for _, r := range recs {
		perOp[r.Operation]++
	}
	if perOp["sign.0"] != writers*each || perOp["sign.1"] != writers*each {
		t.Errorf("audit records by replica %v, want %d each", perOp, writers*each)
	}
	checkSeqs(t, replicas[0], total)
}

// checkLog checks that s's audit log verifies and holds exactly ops, in
// order, at seq 1, 2, ….
func checkLog(t *testing.T, s *Store, ops []string) {
	t.Helper()
	recs := checkSeqs(t, s, len(ops))
	for i, r := range recs {
		if r.Operation != ops[i] {
			t.Errorf("record %d is %q, want %q", r.Seq, r.Operation, ops[i])
		}
	}
}

// checkSeqs checks that s's audit log verifies, holds n records at seq 1
// to n, and that its head is the last; it returns the records.
func checkSeqs(t *testing.T, s *Store, n int) []store.AuditRecord {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := s.VerifyAudit(ctx); err != nil {
		t.Fatalf("VerifyAudit: %v", err)
	}
	recs, err := s.ListAudit(ctx, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != n {
		t.Fatalf("%d audit records, want %d", len(recs), n)
	}
	for i, r := range recs {
		if r.Seq != uint64(i+1) {
			t.Fatalf("audit record %d has seq %d: a gap or a duplicate", i+1, r.Seq)
		}
	}
	seq, hash, err := s.AuditHead(ctx)
	if err != nil || seq != uint64(n) || string(hash) != string(recs[n-1].Hash) {
		t.Fatalf("audit head %d (%v), want %d and the last record's hash", seq, err, n)
	}
	return recs
}
