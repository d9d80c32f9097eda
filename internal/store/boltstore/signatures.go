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
// transaction is fsync'd. rec is keyed by its digest and the seq of its
// audit record (signatureKey), so a digest's records come back in the
// order they were committed and the record names its log leaf.
func (s *Store) PutSignature(ctx context.Context, rec store.SignatureRecord, ev store.AuditEvent) error {
	if err := store.CheckSignatureRecord(rec); err != nil {
		return err
	}
	ev, err := store.PrepareSignatureEvent(rec, ev)
	if err != nil {
		return err
	}
	// Encode outside the transaction: the less work under bbolt's single
	// writer lock, the more callers one commit can serve. The hand-written
	// encoder writes json.Marshal's bytes (loggedSignature's prefilter and
	// SignaturesByDigest's json.Unmarshal read them) without its
	// reflection, a measurable share of a signature's CPU.
	raw, err := store.AppendSignatureRecordJSON(make([]byte, 0, store.SignatureRecordJSONSize(rec)), rec)
	if err != nil {
		return fmt.Errorf("encode signature record: %w", errors.Join(errdefs.ErrInternal, err))
	}

	// Idempotent as batch requires: the audit record's seq and hashes, and
	// so the record's key, all come from tx, so a re-run after a rolled
	// back attempt writes the same thing against the state it sees.
	return s.batch(ctx, func(tx *bolt.Tx, tb *txBatch) error {
		sigs, err := bucket(tx, bucketKeySignatures)
		if err != nil {
			return err
		}
		logged, err := appendAuditTo(tx, ev, tb)
		if err != nil {
			return err
		}
		key := signatureKey(rec.Digest, logged.Seq)
		// As for the audit record: a record already under a key that names
		// a record past the head is damage; overwriting it would hide it.
		if sigs.Get(key) != nil {
			return fmt.Errorf("signature records damaged: one already names audit record %d, past the head (run audit verify): %w", logged.Seq, errdefs.ErrInternal)
		}
		return sigs.Put(key, raw)
	})
}

// signatureKey is the key of the signature record whose audit record is
// seq: digest ‖ uint64be(loggedKeyFlag | seq). Records written before
// schema 4 keep digest ‖ uint64be(n) with n < loggedKeyFlag, a per-bucket
// counter, and so sort before every newer record of their digest.
//
// Keying by the audit record is what makes the record's log leaf findable
// without a second index: before schema 4 a sigleaves/ entry (digest ‖
// SHA-256(signature) → seq) was written beside every signature, and its
// random key dirtied one more B+tree page per signature (measured: 78 of
// 210 µs of CPU per signature in BenchmarkPutSignatureFilled).
func signatureKey(digest []byte, seq uint64) []byte {
	return binary.BigEndian.AppendUint64(bytes.Clone(digest), loggedKeyFlag|seq)
}

// loggedSeq returns the audit seq a signature record's key names, and
// false for a record keyed before schema 4.
func loggedSeq(key []byte) (uint64, bool) {
	if len(key) != store.DigestSize+8 {
		return 0, false
	}
	n := binary.BigEndian.Uint64(key[store.DigestSize:])
	return n &^ loggedKeyFlag, n&loggedKeyFlag != 0
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
