package service

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/signerd/signerd/internal/errdefs"
	"github.com/signerd/signerd/internal/keystore"
	"github.com/signerd/signerd/internal/store"
)

// commitThenFail is a store whose revocation commits and then reports a
// failure, as bbolt's update does when its read after the commit fails,
// or etcd when a committed transaction's answer is lost.
type commitThenFail struct{ store.Store }

func (s commitThenFail) RevokeKeyVersions(ctx context.Context, name string, r store.RevocationReason, at time.Time, ev store.AuditEvent) (store.RevocationReason, error) {
	if _, err := s.Store.RevokeKeyVersions(ctx, name, r, at, ev); err != nil {
		return "", err
	}
	return "", fmt.Errorf("reading the head after the commit: %w", errdefs.ErrUnavailable)
}

// TestCacheDroppedAfterFailedChange: a revocation that committed but
// reported a failure still drops the signer cache, so the next Sign is
// refused before it reaches the HSM.
func TestCacheDroppedAfterFailedChange(t *testing.T) {
	f := newFixture(t)
	svc := New(commitThenFail{f.st}, f.keys, Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if _, err := svc.CreateKey(f.ctx, CreateKeyInput{Name: "k", Algorithm: keystore.Ed25519}); err != nil {
		t.Fatal(err)
	}
	if _, err := svc.Sign(f.ctx, SignInput{KeyName: "k", Digest: digestOf("cached")}); err != nil {
		t.Fatal(err) // the signer is cached now
	}
	if _, err := svc.RevokeKey(f.ctx, "k", store.ReasonKeyCompromise); err == nil {
		t.Fatal("RevokeKey: want the reported failure")
	}
	before := f.keys.signs.Load()
	if _, err := svc.Sign(f.ctx, SignInput{KeyName: "k", Digest: digestOf("after")}); errdefs.ReasonOf(err) != errdefs.ReasonKeyRevoked {
		t.Fatalf("Sign after the revocation committed: %v, want KEY_REVOKED", err)
	}
	if n := f.keys.signs.Load() - before; n != 0 {
		t.Fatalf("the stale cached signer reached the HSM %d times", n)
	}
}
