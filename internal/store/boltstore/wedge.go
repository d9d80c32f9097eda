package boltstore

import (
	"sync"
	"sync/atomic"

	bolt "go.etcd.io/bbolt"
)

// wedge records that a transaction panicked (damage in the file: a fault
// in the memory map, bbolt's panic on a page it cannot parse) where bbolt
// cannot release its own locks, and keeps everything else from waiting for
// them forever.
//
// A write transaction is rolled back in a deferred call that re-reads the
// freelist page; if that panics too (or the panic came from beginning the
// transaction), bbolt's writer lock is never released. So write
// transactions go one at a time through a slot (bbolt's rule anyway); a
// write whose transaction did not finish its rollback keeps the slot, and
// the store is wedged: later writes (signing among them), and writers
// already waiting for the slot, fail at once, health turns NOT_SERVING,
// and Close leaves the file to the process's exit. A write that panicked
// inside its function but was rolled back cleanly only fails.
//
// A read transaction is safe to fail inside (its rollback reads nothing),
// but not in its begin: bbolt reads the meta page holding its meta lock,
// which a fault there leaves held, and every later transaction, read or
// write, would wait for it. That wedges reads too (a file cut below its
// meta pages under the daemon): they fail instead of hanging. Transactions
// already inside bbolt at that moment can still hang on that lock; nothing
// outside bbolt can release it.
//
// The panic itself goes on to whoever recovers it (Guard, the applier, a
// call's interceptor).
type wedge struct {
	path     string
	err      atomic.Pointer[error]
	reads    atomic.Bool   // reads are refused too
	dead     chan struct{} // closed when wedged
	deadOnce sync.Once
	wr       chan struct{} // the write slot
}

func newWedge(path string) *wedge {
	return &wedge{path: path, dead: make(chan struct{}), wr: make(chan struct{}, 1)}
}

// get is the error every write (and Close) returns once the store is
// wedged, else nil.
func (w *wedge) get() error {
	if p := w.err.Load(); p != nil {
		return *p
	}
	return nil
}

// getRead is the error every read returns once reads are wedged too.
func (w *wedge) getRead() error {
	if !w.reads.Load() {
		return nil
	}
	return w.get()
}

func (w *wedge) set(problem string, reads bool) {
	err := error(&DamageError{Path: w.path, Problems: []string{problem +
		": nothing more is written to it (nor read from it, once a transaction's begin faulted) until signerd restarts; stop it, run signctl audit verify --db on a copy, restore or repair the file"}})
	w.err.CompareAndSwap(nil, &err) // before reads: a refused read always has an error
	if reads {
		w.reads.Store(true)
	}
	w.deadOnce.Do(func() { close(w.dead) })
}

// view runs fn in a read-only transaction of db (db.View), unless reads
// are wedged; a panic in beginning it wedges them.
func (w *wedge) view(db *bolt.DB, fn func(*bolt.Tx) error) error {
	if err := w.getRead(); err != nil {
		return err
	}
	entered, returned := false, false
	defer func() {
		if !returned && !entered {
			w.set("beginning a read transaction panicked on it, which leaves bbolt's meta lock held", true)
		}
	}()
	err := db.View(func(tx *bolt.Tx) error {
		entered = true
		return fn(tx)
	})
	returned = true
	return err
}

// update runs fn in a read-write transaction of db (db.Update) once it
// has the write slot, unless the store is wedged; a panic that leaves the
// transaction not rolled back (bbolt's writer lock held) wedges the store.
func (w *wedge) update(db *bolt.DB, fn func(*bolt.Tx) error) error {
	select {
	case w.wr <- struct{}{}:
	case <-w.dead:
		return w.get()
	}
	if err := w.get(); err != nil {
		<-w.wr
		return err
	}
	returned := false
	var txp *bolt.Tx
	defer func() {
		// bbolt clears a transaction's DB when its rollback or commit
		// finished: only then is the writer lock released.
		if !returned && (txp == nil || txp.DB() != nil) {
			w.set("a write transaction panicked on it, which leaves bbolt's writer lock held", false)
			return // the slot stays taken: nobody else waits for bbolt's lock
		}
		<-w.wr
	}()
	err := db.Update(func(tx *bolt.Tx) error {
		txp = tx
		return fn(tx)
	})
	returned = true
	return err
}
