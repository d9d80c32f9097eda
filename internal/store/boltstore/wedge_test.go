package boltstore

import (
	"context"
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

// waitForStack waits until some goroutine's stack contains frame.
func waitForStack(t *testing.T, frame string) {
	t.Helper()
	buf := make([]byte, 1<<20)
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		if strings.Contains(string(buf[:runtime.Stack(buf, true)]), frame) {
			return
		}
	}
	t.Fatalf("no goroutine reached %s", frame)
}

// waitForWriters waits until n goroutines are inside wedge.update.
func waitForWriters(t *testing.T, n int) {
	t.Helper()
	buf := make([]byte, 1<<20)
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		if strings.Count(string(buf[:runtime.Stack(buf, true)]), "boltstore.(*wedge).update(") >= n {
			time.Sleep(50 * time.Millisecond) // on to bbolt's lock, or the gate
			return
		}
	}
	t.Fatalf("fewer than %d writers", n)
}

// newestFreelist is the freelist page id named by the newer meta page.
func newestFreelist(t *testing.T, path string) int64 {
	ps := int64(os.Getpagesize())
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	metaAt := func(i int64) (uint64, uint64) {
		m := raw[i*ps+16:]
		return binary.LittleEndian.Uint64(m[32:]), binary.LittleEndian.Uint64(m[48:])
	}
	fl0, tx0 := metaAt(0)
	fl1, tx1 := metaAt(1)
	if tx1 > tx0 {
		return int64(fl1)
	}
	return int64(fl0)
}

// TestWedgeQueuedWriter: a write transaction wedges the store (its fn
// panics on a damaged page, and bbolt's rollback panics on the damaged
// freelist page) while another writer (here an apply, as the applier or
// Sync runs it) already waits to write. Without the write slot it waited
// in db.Begin(true) for bbolt's writer lock forever, holding applyMu, and
// Close then waited for applyMu forever; now it fails when the store is
// wedged. (A read already inside bbolt when a begin faults can still hang:
// see wedge.go.)
func TestWedgeQueuedWriter(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "signerd.db")
	s, err := Open(ctx, path, Options{IndexMergeAt: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 20 {
		putSig(t, s, i, 20)
	}
	if err := s.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	inTx, proceed := make(chan struct{}), make(chan struct{})
	aDone := make(chan error, 1)
	go func() { // as a merge's chunk meets a page bbolt panics on
		aDone <- Guard(path, func() error {
			return s.w.update(s.db, func(tx *bolt.Tx) error {
				close(inTx)
				<-proceed
				panic("page 7: invalid page type: 0: 10")
			})
		})
	}()
	<-inTx
	writeAt(t, path, newestFreelist(t, path)*int64(os.Getpagesize())+8, []byte{0x01, 0x00}) // freelist flags: a branch

	putSig(t, s, 20, 21) // in the journal only
	syncDone := make(chan error, 1)
	go func() { syncDone <- s.Sync(ctx) }()
	waitForWriters(t, 2) // the panicking one, and the apply queued behind it
	close(proceed)
	if de := (*DamageError)(nil); !errors.As(<-aDone, &de) {
		t.Fatal("the panicking write: want a *DamageError")
	}
	if s.w.get() == nil {
		t.Fatal("not wedged")
	}
	select {
	case err := <-syncDone:
		if de := (*DamageError)(nil); !errors.As(err, &de) {
			t.Errorf("Sync queued before the wedge: %v, want a *DamageError", err)
		}
	case <-time.After(30 * time.Second): // a bound on a hang
		t.Error("Sync (an apply queued before the wedge) hangs")
	}
	if de := (*DamageError)(nil); !errors.As(closeWithin(t, s), &de) {
		t.Error("Close of a wedged store: want a *DamageError")
	}
}

// TestReadOnlyOpenDamagedFreelist: a copy whose freelist page claims far
// more ids than the file holds, opened read-only and walked as signctl
// audit verify --db does, is damage reported, not the end of the process
// (bbolt's tx.Check would load the freelist on a goroutine of its own).
func TestReadOnlyOpenDamagedFreelist(t *testing.T) {
	src := smallDatabase(t)
	path := filepath.Join(t.TempDir(), "copy.db")
	if err := os.WriteFile(path, src, 0o600); err != nil {
		t.Fatal(err)
	}
	fl := newestFreelist(t, path) * int64(os.Getpagesize())
	b := append([]byte(nil), src...)
	// The page header's count 0xFFFF: the real count is the first element.
	binary.LittleEndian.PutUint16(b[fl+10:], 0xFFFF)
	binary.LittleEndian.PutUint64(b[fl+16:], 1<<20)
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	err := Guard(path, func() error {
		s, err := Open(context.Background(), path, Options{ReadOnly: true})
		if err != nil {
			return err
		}
		defer s.Close()
		return s.WalkPages(context.Background())
	})
	if de := (*DamageError)(nil); !errors.As(err, &de) {
		t.Fatalf("read-only open and walk of a file with a damaged freelist: %v, want a *DamageError", err)
	}
}
