package boltstore

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"

	bolt "go.etcd.io/bbolt"

	"github.com/signerd/signerd/internal/errdefs"
	"github.com/signerd/signerd/internal/store"
)

// SetAuditKey records the audit checkpoint key under meta/audit_key, with
// its audit event, in one transaction. ErrAlreadyExists if one is recorded:
// replacing the key would orphan every checkpoint it signed.
func (s *Store) SetAuditKey(ctx context.Context, k store.Key, ev store.AuditEvent) error {
	return s.setServiceKey(ctx, keyAuditKey, "an audit key", k, ev)
}

// AuditKey returns the audit checkpoint key; ErrNotFound if none is
// recorded.
func (s *Store) AuditKey(ctx context.Context) (store.Key, error) {
	return s.serviceKey(ctx, keyAuditKey, "audit key")
}

// PutCheckpoint records c under its seq after checking, in the same
// transaction, that it certifies the log as it is: record c.Seq exists with
// hash c.Hash, c.Seq is at most the head, and c.Seq is past the newest
// checkpoint. It does not check the signature (the store holds no key
// material and trusts no caller with one; internal/auditlog verifies).
func (s *Store) PutCheckpoint(ctx context.Context, c store.Checkpoint) error {
	switch {
	case c.Seq == 0:
		return store.Invalid("checkpoint seq is 0; the first audit record is 1")
	case len(c.Hash) != store.AuditHashSize:
		return store.Invalid("checkpoint hash is %d bytes, want %d", len(c.Hash), store.AuditHashSize)
	case len(c.Signature) == 0:
		return store.Invalid("checkpoint at seq %d is not signed", c.Seq)
	}
	if err := store.CheckName("checkpoint key fingerprint", c.KeyFingerprint); err != nil {
		return err
	}
	if err := store.CheckTime("checkpoint time", c.Time); err != nil {
		return err
	}
	c.Time = c.Time.UTC()
	return s.update(ctx, func(tx *bolt.Tx) error {
		cps, err := bucket(tx, bucketKeyCheckpoints)
		if err != nil {
			return err
		}
		if last, _ := cps.Cursor().Last(); last != nil {
			switch lastSeq := binary.BigEndian.Uint64(last); {
			case c.Seq == lastSeq:
				return fmt.Errorf("a checkpoint at seq %d is already recorded: %w", c.Seq, errdefs.ErrAlreadyExists)
			case c.Seq < lastSeq:
				return fmt.Errorf("checkpoint at seq %d is older than the newest, at %d: %w", c.Seq, lastSeq, errdefs.ErrFailedPrecondition)
			}
		}
		meta, err := bucket(tx, bucketKeyMeta)
		if err != nil {
			return err
		}
		head, _, err := readHead(meta)
		if err != nil {
			return err
		}
		if c.Seq > head {
			return fmt.Errorf("checkpoint at seq %d is past the audit head %d: %w", c.Seq, head, errdefs.ErrFailedPrecondition)
		}
		audit, err := bucket(tx, bucketKeyAudit)
		if err != nil {
			return err
		}
		rec, ok, err := getJSON[store.AuditRecord](audit, seqKey(c.Seq))
		if err != nil {
			return err
		}
		if !ok || rec.Seq != c.Seq || !bytes.Equal(rec.Hash, c.Hash) {
			return fmt.Errorf("checkpoint at seq %d does not match audit record %d: %w", c.Seq, c.Seq, errdefs.ErrFailedPrecondition)
		}
		return putJSON(cps, seqKey(c.Seq), c)
	})
}

// ListCheckpoints returns every checkpoint in ascending key order. A
// checkpoint stored under a key other than its own seq is returned as
// stored, with a *store.ChainError naming the first such one: PutCheckpoint
// orders checkpoints by key, so a checkpoint moved or copied to a higher key
// would otherwise stop every later checkpoint from being recorded (and make
// the daemon serve that checkpoint as its newest) while each checkpoint
// still verifies on its own merits.
func (s *Store) ListCheckpoints(ctx context.Context) ([]store.Checkpoint, error) {
	var (
		out       []store.Checkpoint
		misplaced *store.ChainError
	)
	err := s.viewLog(ctx, func(tx *bolt.Tx) error {
		out, misplaced = nil, nil
		cps, err := bucket(tx, bucketKeyCheckpoints)
		if err != nil {
			return err
		}
		return cps.ForEach(func(k, v []byte) error {
			c, err := decodeJSON[store.Checkpoint](k, v)
			if err != nil {
				// Damage to the file, not a failure to read it: name it
				// the way VerifyAudit names an unreadable record.
				var seq uint64
				if len(k) == 8 {
					seq = binary.BigEndian.Uint64(k)
				}
				return &store.ChainError{Seq: seq, Kind: store.ChainBadCheckpoint,
					Message: fmt.Sprintf("checkpoint stored under %x is not readable: %v", k, err)}
			}
			if misplaced == nil && (len(k) != 8 || binary.BigEndian.Uint64(k) != c.Seq) {
				misplaced = &store.ChainError{Seq: c.Seq, Kind: store.ChainBadCheckpoint,
					Message: fmt.Sprintf("the checkpoint of record %d is stored under key %x, not under its own seq: a checkpoint was moved or copied (no checkpoint past that key can be recorded)", c.Seq, k)}
			}
			out = append(out, c)
			return nil
		})
	})
	if err == nil && misplaced != nil {
		return out, misplaced
	}
	return out, err
}
