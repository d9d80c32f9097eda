package service

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"path/filepath"
	"testing"

	"github.com/signerd/signerd/internal/errdefs"
	"github.com/signerd/signerd/internal/store"
	"github.com/signerd/signerd/internal/store/boltstore"
)

// Two services on one store and one key store are two replicas on one
// etcd prefix and one network HSM. These tests force the interleavings
// that only several replicas produce.

// racingStore is a second replica's view of a shared store: beforeX runs
// just before the call reaches the store, as if the other replica acted at
// that moment.
type racingStore struct {
	store.Store
	auditKeyMissing  bool // AuditKey says ErrNotFound once
	beforeCheckpoint func()
}

func (r *racingStore) AuditKey(ctx context.Context) (store.Key, error) {
	if r.auditKeyMissing {
		r.auditKeyMissing = false
		return store.Key{}, errdefs.ErrNotFound
	}
	return r.Store.AuditKey(ctx)
}

func (r *racingStore) PutCheckpoint(ctx context.Context, c store.Checkpoint) error {
	if f := r.beforeCheckpoint; f != nil {
		r.beforeCheckpoint = nil
		f()
	}
	return r.Store.PutCheckpoint(ctx, c)
}

func twoReplicas(t *testing.T) (a, b *Service, shared *boltstore.Store, rb *racingStore) {
	t.Helper()
	ctx := context.Background()
	st, err := boltstore.Open(ctx, filepath.Join(t.TempDir(), "signerd.db"), boltstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	hsm := newMemKeys()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	rb = &racingStore{Store: st}
	return New(st, hsm, Options{Logger: log}), New(rb, hsm, Options{Logger: log}), st, rb
}

// TestEnsureAuditKeyRace: B looked for the audit key before A recorded
// its own, so B creates one too; B's is refused and B uses A's.
func TestEnsureAuditKeyRace(t *testing.T) {
	a, b, _, rb := twoReplicas(t)
	ctx := context.Background()
	ka, err := a.EnsureAuditKey(ctx)
	if err != nil {
		t.Fatal(err)
	}
	rb.auditKeyMissing = true
	kb, err := b.EnsureAuditKey(ctx)
	if err != nil {
		t.Fatalf("EnsureAuditKey on the replica that lost the race: %v", err)
	}
	if kb.Versions[0].Fingerprint != ka.Versions[0].Fingerprint {
		t.Fatalf("the replicas use different audit keys: %s and %s", ka.Versions[0].Fingerprint, kb.Versions[0].Fingerprint)
	}
}

// TestCheckpointRace: B signs a checkpoint of the head it read, but A
// checkpoints a newer head first; B's is refused as older and B adopts
// A's, which verifies.
func TestCheckpointRace(t *testing.T) {
	a, b, st, rb := twoReplicas(t)
	ctx := context.Background()
	if _, err := a.EnsureAuditKey(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := b.EnsureAuditKey(ctx); err != nil {
		t.Fatal(err)
	}
	var newer store.Checkpoint
	rb.beforeCheckpoint = func() {
		if _, err := st.AppendAudit(ctx, store.AuditEvent{Operation: "verify", Outcome: "ok"}); err != nil {
			t.Error(err)
		}
		var err error
		if newer, _, err = a.Checkpoint(ctx); err != nil {
			t.Error(err)
		}
	}
	got, wrote, err := b.Checkpoint(ctx)
	if err != nil {
		t.Fatalf("Checkpoint on the replica that lost the race: %v", err)
	}
	if wrote || got.Seq != newer.Seq || got.Seq == 0 {
		t.Fatalf("B's checkpoint: seq %d written %v; want A's newer one at %d adopted", got.Seq, wrote, newer.Seq)
	}
	if _, err := b.VerifyAudit(ctx); err != nil {
		t.Fatal(err)
	}
	// The next one B signs builds on it.
	if _, err := st.AppendAudit(ctx, store.AuditEvent{Operation: "verify", Outcome: "ok"}); err != nil {
		t.Fatal(err)
	}
	if c, wrote, err := b.Checkpoint(ctx); err != nil || !wrote || c.Seq != newer.Seq+1 {
		t.Fatalf("B's next checkpoint: seq %d written %v, %v", c.Seq, wrote, err)
	}
	var ce *store.ChainError
	if _, err := a.VerifyAudit(ctx); errors.As(err, &ce) {
		t.Fatal(err)
	}
}
