package service

import (
	"context"
	"crypto/sha256"
	"errors"
	"io"
	"log/slog"
	"path/filepath"
	"testing"
	"time"

	"github.com/signerd/signerd/internal/errdefs"
	"github.com/signerd/signerd/internal/keystore"
	"github.com/signerd/signerd/internal/store"
	"github.com/signerd/signerd/internal/store/boltstore"
)

// notifyingStore is a store that "another replica" writes behind the
// service's back (through the embedded store directly), announcing each
// change on a channel as etcdstore's watch does.
type notifyingStore struct {
	*boltstore.Store
	changes chan struct{}
}

func (n notifyingStore) WatchChanges(ctx context.Context) <-chan struct{} {
	out := make(chan struct{})
	go func() {
		defer close(out)
		for {
			select {
			case <-ctx.Done():
				return
			case <-n.changes:
				out <- struct{}{}
			}
		}
	}()
	return out
}

func TestFollowStoreChanges(t *testing.T) {
	ctx := WithCaller(context.Background(), Caller{ID: "uid:test"})
	bs, err := boltstore.Open(ctx, filepath.Join(t.TempDir(), "signerd.db"), boltstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { bs.Close() })
	st := notifyingStore{Store: bs, changes: make(chan struct{})}
	svc := New(st, newMemKeys(), Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	wctx, stop := context.WithCancel(ctx)
	done := svc.FollowStoreChanges(wctx)

	if _, err := svc.CreateKey(ctx, CreateKeyInput{Name: "release", Algorithm: keystore.Ed25519}); err != nil {
		t.Fatal(err)
	}
	sign := func() error {
		d := sha256.Sum256([]byte("pkg"))
		_, err := svc.Sign(ctx, SignInput{KeyName: "release", Digest: d[:]})
		return err
	}
	if err := sign(); err != nil {
		t.Fatal(err)
	}
	// Another replica revokes the key: the cached key still signs here
	// until the change is announced…
	if err := bs.RevokeKeyVersions(ctx, "release", store.ReasonKeyCompromise, time.Now(), store.AuditEvent{Operation: "key.revoke"}); err != nil {
		t.Fatal(err)
	}
	if err := sign(); err != nil {
		t.Fatalf("Sign from the cache before the announcement: %v", err)
	}
	// …and is refused once it is.
	st.changes <- struct{}{}
	deadline := time.Now().Add(30 * time.Second)
	for err := sign(); !errors.Is(err, errdefs.ErrFailedPrecondition); err = sign() {
		if time.Now().After(deadline) {
			t.Fatalf("Sign after the revocation was announced: %v, want KEY_REVOKED", err)
		}
		time.Sleep(5 * time.Millisecond)
	}
	stop()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("FollowStoreChanges did not stop with its context")
	}
}

func TestFollowStoreChangesWithoutNotifier(t *testing.T) {
	f := newFixture(t)
	select {
	case <-f.svc.FollowStoreChanges(context.Background()):
	default:
		t.Fatal("FollowStoreChanges on a bbolt store should have nothing to follow")
	}
}
