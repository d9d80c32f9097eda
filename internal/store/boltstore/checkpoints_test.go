package boltstore

import (
	"context"
	"errors"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/signerd/signerd/internal/errdefs"
	"github.com/signerd/signerd/internal/store"
)

func checkpointOf(t *testing.T, s *Store, seq uint64) store.Checkpoint {
	t.Helper()
	recs, err := s.ListAudit(context.Background(), seq-1, 1)
	if err != nil || len(recs) != 1 {
		t.Fatalf("record %d: %v", seq, err)
	}
	return store.Checkpoint{Seq: seq, Hash: recs[0].Hash, Time: time.Date(2025, 1, 1, 0, 0, 0, 1, time.UTC), KeyFingerprint: "fp", Signature: []byte{0x30}}
}

// TestCheckpointsPersistAndStayReadOnly: checkpoints and the audit key
// survive a reopen, a read-only store lists them and refuses to write.
func TestCheckpointsPersistAndStayReadOnly(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "db")
	writeLog(t, path, 5)
	s := openOK(t, path, Options{})
	c := checkpointOf(t, s, 4)
	if err := s.PutCheckpoint(ctx, c); err != nil {
		t.Fatal(err)
	}
	k := store.Key{Name: "signerd-audit", Algorithm: "ecdsa-p256", Versions: []store.KeyVersion{{Version: 1, CKAID: []byte{9}, PublicKey: []byte{1}, Fingerprint: "fp"}}}
	if err := s.SetAuditKey(ctx, k, store.AuditEvent{Operation: "audit.key.create"}); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	ro := openOK(t, path, Options{ReadOnly: true})
	cps, err := ro.ListCheckpoints(ctx)
	if err != nil || !reflect.DeepEqual(cps, []store.Checkpoint{c}) {
		t.Fatalf("ListCheckpoints after reopen = %+v, %v; want %+v", cps, err, c)
	}
	if got, err := ro.AuditKey(ctx); err != nil || got.Versions[0].Fingerprint != "fp" || got.Versions[0].State != store.KeyActive {
		t.Fatalf("AuditKey after reopen = %+v, %v", got, err)
	}
	if err := ro.VerifyAudit(ctx); err != nil {
		t.Fatalf("VerifyAudit: %v", err)
	}
	if err := ro.PutCheckpoint(ctx, checkpointOf(t, ro, 6)); !errors.Is(err, errdefs.ErrFailedPrecondition) {
		t.Fatalf("PutCheckpoint on a read-only store: %v", err)
	}
	if err := ro.SetAuditKey(ctx, k, store.AuditEvent{Operation: "x"}); !errors.Is(err, errdefs.ErrFailedPrecondition) {
		t.Fatalf("SetAuditKey on a read-only store: %v", err)
	}
}

// TestUnreadableCheckpoint: a damaged checkpoint is reported as a broken
// log at its seq, not as an internal error.
func TestUnreadableCheckpoint(t *testing.T) {
	path := filepath.Join(t.TempDir(), "db")
	writeLog(t, path, 3)
	rawUpdate(t, path, func(tx *bolt.Tx) error {
		return tx.Bucket(bucketKeyRoot).Bucket(bucketKeyCheckpoints).Put(seqKey(2), []byte("{not json"))
	})
	s := openOK(t, path, Options{ReadOnly: true})
	_, err := s.ListCheckpoints(context.Background())
	var ce *store.ChainError
	if !errors.As(err, &ce) || ce.Seq != 2 || ce.Kind != store.ChainBadCheckpoint {
		t.Fatalf("ListCheckpoints with a damaged entry: %v", err)
	}
}

// TestMisplacedCheckpoint: a checkpoint moved or copied under another key
// (here one past every seq, which stops PutCheckpoint from recording any
// later checkpoint) is damage ListCheckpoints names, though the checkpoint
// itself is intact.
func TestMisplacedCheckpoint(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "db")
	writeLog(t, path, 5)
	s := openOK(t, path, Options{})
	c := checkpointOf(t, s, 3)
	if err := s.PutCheckpoint(ctx, c); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	rawUpdate(t, path, func(tx *bolt.Tx) error {
		cps := tx.Bucket(bucketKeyRoot).Bucket(bucketKeyCheckpoints)
		return cps.Put(seqKey(1000), cps.Get(seqKey(3)))
	})
	s = openOK(t, path, Options{})
	cps, err := s.ListCheckpoints(ctx)
	var ce *store.ChainError
	if !errors.As(err, &ce) || ce.Seq != 3 || ce.Kind != store.ChainBadCheckpoint || len(cps) != 2 {
		t.Fatalf("ListCheckpoints with a checkpoint copied to key 1000 = %d checkpoints, %v; want both and a bad checkpoint at 3", len(cps), err)
	}
	// What the copy does unreported: the next checkpoint cannot be recorded.
	if err := s.PutCheckpoint(ctx, checkpointOf(t, s, 5)); !errors.Is(err, errdefs.ErrFailedPrecondition) {
		t.Fatalf("PutCheckpoint(5) after the copy: %v", err)
	}
}
