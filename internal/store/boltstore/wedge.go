package boltstore

import (
	"sync/atomic"

	bolt "go.etcd.io/bbolt"
)

// wedge records that a read-write transaction panicked (damage in the
// file: a fault in the memory map, bbolt's panic on a page it cannot
// parse). bbolt rolls a transaction back in a deferred call that re-reads
// the freelist page; if that panics too, or the panic came from beginning
// the transaction, bbolt's writer lock is never released, and every later
// write, and closing the database, would wait for it forever. So after
// such a panic nothing begins another read-write transaction: writes
// (signing among them) are refused, health turns NOT_SERVING, and Close
// leaves the file to the process's exit. The panic itself goes on to
// whoever recovers it (Guard, the applier, a call's interceptor).
//
// A read transaction is safe to fail inside (its rollback reads nothing),
// but not in its begin: bbolt reads the meta page holding its meta lock,
// which a fault there leaves held, and every later transaction, read or
// write, would wait for it. That wedges reads too (a file cut below its
// meta pages under the daemon): they fail instead of hanging.
type wedge struct {
	path  string
	err   atomic.Pointer[error]
	reads atomic.Bool // reads are refused too
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
	if reads {
		w.reads.Store(true)
	}
	err := error(&DamageError{Path: w.path, Problems: []string{problem +
		": nothing more is read from or written to it until signerd restarts (stop it, run signctl audit verify --db on a copy, restore or repair the file)"}})
	if !reads {
		err = &DamageError{Path: w.path, Problems: []string{problem +
			": nothing more is written to it until signerd restarts (stop it, run signctl audit verify --db on a copy, restore or repair the file)"}}
	}
	w.err.CompareAndSwap(nil, &err)
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

// update runs fn in a read-write transaction of db (db.Update), unless the
// store is wedged; a panic out of it wedges the store.
func (w *wedge) update(db *bolt.DB, fn func(*bolt.Tx) error) error {
	if err := w.get(); err != nil {
		return err
	}
	returned := false
	defer func() {
		if !returned {
			w.set("a write transaction panicked on it, which may leave bbolt's writer lock held", false)
		}
	}()
	err := db.Update(fn)
	returned = true
	return err
}
