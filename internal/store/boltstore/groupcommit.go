package boltstore

import (
	"fmt"
	"sync"

	bolt "go.etcd.io/bbolt"

	"github.com/signerd/signerd/internal/errdefs"
)

// groupCommit is the store's group commit for PutSignature and AppendAudit.
//
// bbolt's own db.Batch waits a fixed window (MaxBatchDelay) for more
// callers and then commits; under load from callers that arrive as fast as
// an HSM signs, its batches stay small (2–3 measured) while every commit
// costs a page write and an fdatasync. Here there is no window at all: the
// first caller starts a committer that writes whatever is queued in one
// transaction; callers arriving during that commit queue up and all go in
// the next one. An idle store commits a lone caller at once; a busy one
// puts as many records in each fsync as arrived during the previous.
type groupCommit struct {
	db *bolt.DB
	// max bounds one transaction, so one huge batch cannot hold the writer
	// lock (and every waiter) for long.
	max int

	mu      sync.Mutex
	pending []*commitReq
	running bool
}

type commitReq struct {
	fn   batchFunc
	done chan error
}

// batchFunc is one request's work in a shared transaction. Work that is
// cheaper done once per transaction than once per request goes in tb.
type batchFunc func(tx *bolt.Tx, tb *txBatch) error

// txBatch is what the functions of one transaction defer to its end.
type txBatch struct {
	// leaves are the tree leaves of the audit records appended so far,
	// the first one at tree size size: one append of them all reads and
	// rewrites the tree head once instead of once per record (measured:
	// ~5 µs of CPU per signature at 8 signatures per commit).
	size   uint64
	leaves [][]byte
}

// addLeaf defers the tree append of the leaf at index size.
func (tb *txBatch) addLeaf(size uint64, leaf []byte) error {
	if len(tb.leaves) == 0 {
		tb.size = size
	} else if tb.size+uint64(len(tb.leaves)) != size {
		return fmt.Errorf("tree leaf %d deferred after leaves %d..%d: %w", size, tb.size, tb.size+uint64(len(tb.leaves))-1, errdefs.ErrInternal)
	}
	tb.leaves = append(tb.leaves, leaf)
	return nil
}

// finish does the deferred work; the transaction commits only if it
// succeeds.
func (tb *txBatch) finish(tx *bolt.Tx) error {
	if len(tb.leaves) == 0 {
		return nil
	}
	return appendLeaves(tx, tb.size, tb.leaves)
}

// run runs fns and then the work they deferred, in tx.
func run(tx *bolt.Tx, fns ...batchFunc) error {
	var tb txBatch
	for _, fn := range fns {
		if err := safely(fn, tx, &tb); err != nil {
			return err
		}
	}
	return tb.finish(tx)
}

// do runs fn in a shared transaction and returns once that transaction is
// durable (or failed). fn MUST be idempotent: if another function in the
// same transaction fails, fn is run again in a transaction of its own.
func (g *groupCommit) do(fn batchFunc) error {
	r := &commitReq{fn: fn, done: make(chan error, 1)}
	g.mu.Lock()
	g.pending = append(g.pending, r)
	if !g.running {
		g.running = true
		go g.loop()
	}
	g.mu.Unlock()
	return <-r.done
}

// loop commits queued requests until none are left.
func (g *groupCommit) loop() {
	for {
		g.mu.Lock()
		n := min(len(g.pending), g.max)
		if n == 0 {
			g.running = false
			g.mu.Unlock()
			return
		}
		batch := g.pending[:n:n]
		g.pending = append([]*commitReq(nil), g.pending[n:]...)
		g.mu.Unlock()
		g.commit(batch)
	}
}

// commit writes batch in one transaction; if any function fails, the
// transaction is rolled back and each request is retried alone so that
// one bad request cannot fail the others.
func (g *groupCommit) commit(batch []*commitReq) {
	fns := make([]batchFunc, len(batch))
	for i, r := range batch {
		fns[i] = r.fn
	}
	err := g.db.Update(func(tx *bolt.Tx) error { return run(tx, fns...) })
	if err == nil || len(batch) == 1 {
		for _, r := range batch {
			r.done <- err
		}
		return
	}
	for _, r := range batch {
		r.done <- g.db.Update(func(tx *bolt.Tx) error { return run(tx, r.fn) })
	}
}

// safely runs fn, turning a panic into an error for its caller: fn runs on
// the committer goroutine, where a panic would otherwise take the daemon
// down with every waiter (bbolt's Batch, which this replaces, did the same).
func safely(fn batchFunc, tx *bolt.Tx, tb *txBatch) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("database write panicked: %v: %w", r, errdefs.ErrInternal)
		}
	}()
	return fn(tx, tb)
}
