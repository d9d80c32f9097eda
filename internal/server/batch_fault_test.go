package server

import (
	"context"
	"crypto/sha256"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"testing"

	"google.golang.org/grpc/codes"

	signerv1 "github.com/signerd/signerd/gen/signer/v1"
	"github.com/signerd/signerd/internal/service"
	"github.com/signerd/signerd/internal/store/boltstore"
)

// TestBatchItemMeetsDamage: SignBatch items are signed on worker
// goroutines, where the stream interceptor's recovery does not reach. An
// item whose key look-up faults in the map of a database file cut short
// under the daemon fails INTERNAL instead of ending the process.
func TestBatchItemMeetsDamage(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "signerd.db")
	st, err := boltstore.Open(ctx, path, boltstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer boltstore.Guard(path, st.Close) //nolint:errcheck // the file is damaged on purpose
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	s := &signerServer{svc: service.New(st, nil, service.Options{Logger: log}), log: log}
	if err := os.Truncate(path, 2*int64(os.Getpagesize())); err != nil {
		t.Fatal(err)
	}
	d := sha256.Sum256([]byte("pkg"))
	out := make(chan *signerv1.SignBatchResponse, 1)
	go func() { // as batchItems' workers run it
		out <- s.signItemGuarded(service.WithCaller(ctx, service.Caller{ID: "uid:0"}), Identity{ID: "uid:0", Unix: true},
			&signerv1.SignRequest{KeyName: "release", Digest: d[:]})
	}()
	resp := <-out
	if e := resp.GetError(); e == nil || codes.Code(e.GetCode()) != codes.Internal {
		t.Fatalf("item over a truncated file: %v, want an INTERNAL item error", resp)
	}
}
