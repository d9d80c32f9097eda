package service

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"testing"

	"github.com/signerd/signerd/internal/errdefs"
	"github.com/signerd/signerd/internal/keystore"
	"github.com/signerd/signerd/internal/store/boltstore"
)

// TestCheckpointMeetsDamage: the periodic and final checkpoints run where
// no call's recovery is. A database file cut short under the daemon (its
// pages past the new end fault when bbolt reads them through its map)
// fails the checkpoint with an internal error instead of ending the
// process.
func TestCheckpointMeetsDamage(t *testing.T) {
	ctx := WithCaller(context.Background(), Caller{ID: "uid:test"})
	path := filepath.Join(t.TempDir(), "signerd.db")
	st, err := boltstore.Open(ctx, path, boltstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	svc := New(st, newMemKeys(), Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if _, err := svc.EnsureAuditKey(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := svc.CreateKey(ctx, CreateKeyInput{Name: "release", Algorithm: keystore.Ed25519}); err != nil {
		t.Fatal(err)
	}
	if err := st.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(path, 2*int64(os.Getpagesize())); err != nil {
		t.Fatal(err)
	}
	// A goroutine of its own, as RunCheckpoints' is.
	errc := make(chan error, 1)
	go func() {
		_, _, err := svc.Checkpoint(ctx)
		errc <- err
	}()
	if err := <-errc; !errors.Is(err, errdefs.ErrInternal) {
		t.Fatalf("Checkpoint over a truncated file: %v, want an internal error", err)
	}
	_ = boltstore.Guard(path, st.Close)
}
