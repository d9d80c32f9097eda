package boltstore

import (
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/signerd/signerd/internal/errdefs"
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
