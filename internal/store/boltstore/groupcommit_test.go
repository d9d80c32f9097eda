package boltstore

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/signerd/signerd/internal/errdefs"
	"github.com/signerd/signerd/internal/store"
	"github.com/signerd/signerd/internal/store/storetest"
)

func openBolt(t *testing.T) *bolt.DB {
	t.Helper()
	db, err := bolt.Open(filepath.Join(t.TempDir(), "gc.db"), 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	if err := db.Update(func(tx *bolt.Tx) error { _, err := tx.CreateBucket([]byte("b")); return err }); err != nil {
		t.Fatal(err)
	}
	return db
}

func put(k string) batchFunc {
	return func(tx *bolt.Tx, _ *txBatch) error { return tx.Bucket([]byte("b")).Put([]byte(k), []byte("v")) }
}

func count(t *testing.T, db *bolt.DB) int {
	t.Helper()
	n := 0
	db.View(func(tx *bolt.Tx) error { n = tx.Bucket([]byte("b")).Stats().KeyN; return nil })
	return n
}

// TestGroupCommit: concurrent callers all commit, a failing or panicking
// request fails alone, and the per-transaction cap splits large batches.
func TestGroupCommit(t *testing.T) {
	tests := []struct {
		name string
		max  int
		// bad[i] makes request i fail ("err") or panic ("panic").
		bad map[int]string
		n   int
	}{
		{"all succeed", 1000, nil, 200},
		{"one error fails alone", 1000, map[int]string{17: "err"}, 100},
		{"one panic fails alone", 1000, map[int]string{3: "panic"}, 100},
		{"cap of 5", 5, map[int]string{40: "err"}, 120},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			db := openBolt(t)
			g := &groupCommit{db: db, max: tt.max}
			errs := make([]error, tt.n)
			var wg sync.WaitGroup
			for i := range tt.n {
				wg.Add(1)
				go func() {
					defer wg.Done()
					fn := put(fmt.Sprint(i))
					switch tt.bad[i] {
					case "err":
						fn = func(*bolt.Tx, *txBatch) error { return errdefs.ErrInvalidArgument }
					case "panic":
						fn = func(*bolt.Tx, *txBatch) error { panic("boom") }
					}
					errs[i] = g.do(fn)
				}()
			}
			wg.Wait()
			for i, err := range errs {
				switch tt.bad[i] {
				case "":
					if err != nil {
						t.Fatalf("request %d: %v", i, err)
					}
				case "err":
					if !errors.Is(err, errdefs.ErrInvalidArgument) {
						t.Fatalf("request %d: %v, want its own error", i, err)
					}
				case "panic":
					if !errors.Is(err, errdefs.ErrInternal) {
						t.Fatalf("request %d: %v, want ErrInternal", i, err)
					}
				}
			}
			if got, want := count(t, db), tt.n-len(tt.bad); got != want {
				t.Fatalf("%d keys committed, want %d", got, want)
			}
			// The committer delivers results before it looks for more
			// work, so it may still be winding down: it must stop soon.
			deadline := time.Now().Add(30 * time.Second)
			for {
				g.mu.Lock()
				idle := !g.running && len(g.pending) == 0
				g.mu.Unlock()
				if idle {
					break
				}
				if time.Now().After(deadline) {
					t.Fatal("committer still running with nothing to do")
				}
				time.Sleep(time.Millisecond)
			}
		})
	}
}

// TestGroupCommitClosedDB: waiters are woken with an error when the
// database is gone.
func TestGroupCommitClosedDB(t *testing.T) {
	db := openBolt(t)
	g := &groupCommit{db: db, max: 10}
	db.Close()
	if err := g.do(put("x")); err == nil {
		t.Fatal("commit on a closed database succeeded")
	}
}

// TestGroupCommitDefersTree: the records of one transaction are appended to
// the tree together at its end (one tree head write, not one per record),
// the tree comes out as if appended one by one, and a transaction that
// fails leaves neither records nor tree behind.
func TestGroupCommitDefersTree(t *testing.T) {
	s := openTemp(t)
	appendN := func(n int, fail bool) batchFunc {
		return func(tx *bolt.Tx, tb *txBatch) error {
			for i := range n {
				if _, err := appendAuditTo(tx, store.AuditEvent{Caller: "test", Operation: fmt.Sprintf("op.%d", i), Outcome: "ok"}, tb); err != nil {
					return err
				}
			}
			if fail {
				return errdefs.ErrInvalidArgument
			}
			return nil
		}
	}
	tests := []struct {
		name       string
		fns        []batchFunc
		wantErr    bool
		wantWrites uint64 // tree nodes and heads written
		wantSize   uint64
	}{
		// 5 leaves into an empty tree: nodes (0,0..4), (1,0..1), (2,0)
		// and one head; one append per record would write 5 heads.
		{"five records", []batchFunc{appendN(2, false), appendN(3, false)}, false, 8 + 1, 5},
		{"failed transaction", []batchFunc{appendN(2, false), appendN(1, true)}, true, 0, 5},
		// Leaves 5..7 complete (0,5..7), (1,2..3), (2,1), (3,0).
		{"three more", []batchFunc{appendN(3, false)}, false, 7 + 1, 8},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, w0 := s.TreeOps()
			err := s.db.Update(func(tx *bolt.Tx) error { return run(tx, tt.fns...) })
			if (err != nil) != tt.wantErr {
				t.Fatalf("transaction: %v, want error %v", err, tt.wantErr)
			}
			if _, w1 := s.TreeOps(); tt.wantErr == false && w1-w0 != tt.wantWrites {
				t.Fatalf("%d tree writes, want %d", w1-w0, tt.wantWrites)
			}
			if size, err := s.LogSize(context.Background()); err != nil || size != tt.wantSize {
				t.Fatalf("log size %d (%v), want %d", size, err, tt.wantSize)
			}
			storetest.CheckLog(t, s)
		})
	}
}
