package boltstore

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"

	bolt "go.etcd.io/bbolt"

	"github.com/signerd/signerd/internal/errdefs"
	"github.com/signerd/signerd/internal/store"
)

// PutSignature records rec and its audit event in one transaction shared,
// through group commit, with concurrent callers; it returns after that
// transaction is fsync'd. rec is keyed by its digest and a per-database
// sequence, so several records per digest are kept in the order they were
// committed.
func (s *Store) PutSignature(ctx context.Context, rec store.SignatureRecord, ev store.AuditEvent) error {
	if err := store.CheckSignatureRecord(rec); err != nil {
		return err
	}
	ev, err := store.PrepareSignatureEvent(rec, ev)
	if err != nil {
		return err
	}
	// Encode outside the transaction: the less work under bbolt's single
	// writer lock, the more callers one commit can serve.
	raw, err := json.Marshal(rec)
	if err != nil {
		return fmt.Errorf("encode signature record: %w", errors.Join(errdefs.ErrInternal, err))
	}

	// Idempotent as batch requires: the key's sequence and the audit
	// record's seq and hashes all come from tx, so a re-run after a rolled
	// back attempt writes the same thing against the state it sees.
	return s.batch(ctx, func(tx *bolt.Tx) error {
		sigs, err := bucket(tx, bucketKeySignatures)
		if err != nil {
			return err
		}
		n, err := sigs.NextSequence()
		if err != nil {
			return err
		}
		if err := sigs.Put(binary.BigEndian.AppendUint64(bytes.Clone(rec.Digest), n), raw); err != nil {
			return err
		}
		_, err = appendAudit(tx, ev)
		return err
	})
}

// SignaturesByDigest returns every record for digest, oldest first; none is
// an empty result, not an error.
func (s *Store) SignaturesByDigest(ctx context.Context, digest []byte) ([]store.SignatureRecord, error) {
	if err := store.CheckDigest(digest); err != nil {
		return nil, err
	}
	var out []store.SignatureRecord
	err := view(ctx, s.db, func(tx *bolt.Tx) error {
		sigs, err := bucket(tx, bucketKeySignatures)
		if err != nil {
			return err
		}
		c := sigs.Cursor()
		for k, v := c.Seek(digest); k != nil && bytes.HasPrefix(k, digest); k, v = c.Next() {
			var rec store.SignatureRecord
			if err := json.Unmarshal(v, &rec); err != nil {
				return fmt.Errorf("decode signature record %x: %w", k, errors.Join(errdefs.ErrInternal, err))
			}
			out = append(out, rec)
		}
		return nil
	})
	return out, err
}
