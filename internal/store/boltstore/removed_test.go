package boltstore

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/signerd/signerd/internal/store"
)

// gatedLog holds the open that logs "opened database" (it then holds the
// file's lock) until gate is closed.
type gatedLog struct {
	slog.Handler
	reached, gate chan struct{}
}

func (h gatedLog) Enabled(context.Context, slog.Level) bool { return true }
func (h gatedLog) Handle(_ context.Context, r slog.Record) error {
	if r.Message == "opened database" {
		close(h.reached)
		<-h.gate
	}
	return nil
}
func (h gatedLog) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h gatedLog) WithGroup(string) slog.Handler      { return h }

// TestOpenWaitingOnARemovedFile: a first open that fails removes the file
// it created while it holds the lock; a second open that had already
// opened that file and waited for the lock must not serve the removed
// file (everything it recorded would be lost), but open the path again.
func TestOpenWaitingOnARemovedFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "signerd.db")
	reached, gate := make(chan struct{}), make(chan struct{})
	var opens atomic.Int32
	secondOpened := make(chan struct{})
	openedHook = func() {
		if opens.Add(1) == 2 {
			close(secondOpened)
		}
	}
	defer func() { openedHook = nil }()

	first := make(chan error, 1)
	go func() {
		_, err := Open(context.Background(), path, Options{JournalSize: minJournalSize - 1, Logger: slog.New(gatedLog{slog.DiscardHandler, reached, gate})})
		first <- err
	}()
	type opened struct {
		s   *Store
		err error
	}
	second := make(chan opened, 1)
	<-reached // the first open holds the file's lock
	go func() {
		s, err := Open(context.Background(), path, Options{JournalSize: 1 << 20, Timeout: time.Minute})
		second <- opened{s, err}
	}()
	<-secondOpened // the second open has the (soon removed) file open
	close(gate)
	if err := <-first; err == nil {
		t.Fatal("the first open, with a journal below the minimum, succeeded")
	}
	b := <-second
	if b.err != nil {
		t.Fatalf("the second open: %v", b.err)
	}
	rec := putSig(t, b.s, 0, 3)
	if err := b.s.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(path); err != nil {
		t.Fatalf("the second open served a file that is no longer at %s: %v", path, err)
	}
	s := openOK(t, path, Options{JournalSize: 1 << 20})
	checkAll(t, s, []store.SignatureRecord{rec}, 1)
}

// TestCreated: an open that makes the file says so, a later one does not,
// and neither does one that found no file but lost the race to make it
// (another open created and initialised it before this one had the lock).
func TestCreated(t *testing.T) {
	path := filepath.Join(t.TempDir(), "signerd.db")
	s := openOK(t, path, Options{JournalSize: 1 << 20})
	if !s.Created() {
		t.Fatal("the open that made the file says it did not")
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if s := openOK(t, path, Options{JournalSize: 1 << 20}); s.Created() {
		t.Fatal("a second open says it made the file")
	}

	raced := filepath.Join(t.TempDir(), "signerd.db")
	var calls atomic.Int32
	openedHook = func() {
		if calls.Add(1) != 1 {
			return
		}
		// The first open has the (empty) file open and not yet locked:
		// another makes, initialises and closes it now.
		other, err := Open(context.Background(), raced, Options{JournalSize: 1 << 20})
		if err != nil {
			t.Error(err)
			return
		}
		if err := other.Close(); err != nil {
			t.Error(err)
		}
	}
	defer func() { openedHook = nil }()
	s, err := Open(context.Background(), raced, Options{JournalSize: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if s.Created() {
		t.Fatal("an open that lost the race to make the file says it made it")
	}
}
