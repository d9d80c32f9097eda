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
	keys := newMemKeys()
	svc := New(st, keys, Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
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
	// Another replica revokes the key: until the change is announced the
	// cached key still reaches the HSM here, and the store refuses to
	// record (so to release) what it signed…
	if _, err := bs.RevokeKeyVersions(ctx, "release", store.ReasonKeyCompromise, time.Now(), store.AuditEvent{Operation: "key.revoke"}); err != nil {
		t.Fatal(err)
	}
	before := keys.signs.Load()
	if err := sign(); !errors.Is(err, errdefs.ErrFailedPrecondition) || errdefs.ReasonOf(err) != errdefs.ReasonKeyRevoked {
		t.Fatalf("Sign from the cache before the announcement: %v, want KEY_REVOKED", err)
	}
	if n := keys.signs.Load() - before; n != 1 {
		t.Fatalf("Sign from the cache before the announcement made %d HSM signatures, want 1 (discarded)", n)
	}
	// …and once it is, the cache is dropped: refused before the HSM.
	st.changes <- struct{}{}
	deadline := time.Now().Add(30 * time.Second)
	for {
		before := keys.signs.Load()
		err := sign()
		if !errors.Is(err, errdefs.ErrFailedPrecondition) {
			t.Fatalf("Sign after the revocation: %v, want KEY_REVOKED", err)
		}
		if keys.signs.Load() == before {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("Sign after the revocation was announced still reaches the HSM: the cache was not dropped")
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
