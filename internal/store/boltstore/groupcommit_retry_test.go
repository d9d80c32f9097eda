package boltstore

import (
	"context"
	"fmt"
	"testing"

	bolt "go.etcd.io/bbolt"

	"github.com/signerd/signerd/internal/errdefs"
	"github.com/signerd/signerd/internal/store"
	"github.com/signerd/signerd/internal/store/storetest"
)

// TestGroupCommitRetryDeferredLeaves drives groupCommit.commit's retry
// path with requests that defer tree leaves: the shared transaction fails
// (an error, a panic, after leaves were deferred), each request is retried
// alone with a fresh txBatch, and the log and tree must come out
// consistent, interleaved with appends outside group commit.
func TestGroupCommitRetryDeferredLeaves(t *testing.T) {
	s := openTemp(t)
	ctx := context.Background()
	ev := func(op string) store.AuditEvent {
		return store.AuditEvent{Caller: "test", Operation: op, Outcome: "ok"}
	}
	appendN := func(n int, failAfter string) batchFunc {
		return func(tx *bolt.Tx, tb *txBatch) error {
			for i := range n {
				if _, err := appendAuditTo(tx, ev(fmt.Sprintf("op.%d", i)), tb); err != nil {
					return err
				}
			}
			switch failAfter {
			case "err":
				return errdefs.ErrInvalidArgument
			case "panic":
				panic("boom")
			}
			return nil
		}
	}
	var want uint64
	for round := range 4 {
		batch := []*commitReq{
			{fn: appendN(2, ""), done: make(chan error, 1)},
			{fn: appendN(3, "err"), done: make(chan error, 1)},
			{fn: appendN(1, ""), done: make(chan error, 1)},
			{fn: appendN(2, "panic"), done: make(chan error, 1)},
			{fn: appendN(4, ""), done: make(chan error, 1)},
		}
		s.gc.commit(batch)
		for i, r := range batch {
			err := <-r.done
			if wantErr := i == 1 || i == 3; (err != nil) != wantErr {
				t.Fatalf("round %d request %d: %v", round, i, err)
			}
		}
		want += 2 + 1 + 4
		// An append outside group commit, straight to the tree.
		if err := s.db.Update(func(tx *bolt.Tx) error { _, err := appendAudit(tx, ev("direct")); return err }); err != nil {
			t.Fatal(err)
		}
		want++
		if size, err := s.LogSize(ctx); err != nil || size != want {
			t.Fatalf("round %d: log size %d (%v), want %d", round, size, err, want)
		}
		storetest.CheckLog(t, s)
	}
	if err := s.VerifyAudit(ctx); err != nil {
		t.Fatalf("VerifyAudit: %v", err)
	}
}
