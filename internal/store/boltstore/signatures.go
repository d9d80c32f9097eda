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
// transaction is fsync'd. rec is appended under the seq of its audit
// record (sigrecords/), so it names its log leaf and the commit writes
// only the last page of the bucket; its digest index entry is in memory
// until a merge persists it (sigindex.go).
func (s *Store) PutSignature(ctx context.Context, rec store.SignatureRecord, ev store.AuditEvent) error {
	if err := store.CheckSignatureRecord(rec); err != nil {
		return err
	}
	ev, err := store.PrepareSignatureEvent(rec, ev)
	if err != nil {
		return err
	}
	if err := s.admit(); err != nil {
		return err
	}
	// Encode outside the transaction: the less work under bbolt's single
	// writer lock, the more callers one commit can serve. The hand-written
	// encoder writes json.Marshal's bytes (loggedSignature's prefilter,
	// recordDigest and SignaturesByDigest's json.Unmarshal read them)
	// without its reflection, a measurable share of a signature's CPU.
	raw, err := store.AppendSignatureRecordJSON(make([]byte, 0, store.SignatureRecordJSONSize(rec)), rec)
	if err != nil {
		return fmt.Errorf("encode signature record: %w", errors.Join(errdefs.ErrInternal, err))
	}

	// Idempotent as batch requires: the audit record's seq and hashes, and
	// so the record's key, all come from tx, so a re-run after a rolled
	// back attempt writes the same thing against the state it sees. Only
	// the run that commits returns, and it is the last, so seq is its.
	var seq uint64
	err = s.batch(ctx, func(tx *bolt.Tx, tb *txBatch) error {
		recs, err := bucket(tx, bucketKeySigRecords)
		if err != nil {
			return err
		}
		recs.FillPercent = appendFill
		logged, err := appendAuditTo(tx, ev, tb)
		if err != nil {
			return err
		}
		key := seqKey(logged.Seq)
		// As for the audit record: a record already under the seq of a
		// record past the head is damage; overwriting it would hide it.
		if recs.Get(key) != nil {
			return fmt.Errorf("signature records damaged: one already names audit record %d, past the head (run audit verify): %w", logged.Seq, errdefs.ErrInternal)
		}
		seq = logged.Seq
		return recs.Put(key, raw)
	})
	if err != nil {
		return err
	}
	pending := s.idx.add(rec.Digest, seq)
	s.maybeMerge(pending)
	s.throttle(pending)
	return nil
}

// signatureKey is the key, in signatures/ (schema 4) and in the digest
// index (schema 5 on), of the signature record whose audit record is seq:
// digest ‖ uint64be(loggedKeyFlag | seq). Records written before schema 4
// keep digest ‖ uint64be(n) with n < loggedKeyFlag, a per-bucket counter,
// and so sort before every newer record of their digest.
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
	// Before the transaction: every pending key then names a record the
	// transaction sees (signatureRecords).
	pending := s.idx.keys(digest)
	var out []store.SignatureRecord
	err := view(ctx, s.db, func(tx *bolt.Tx) error {
		out = nil
		return signatureRecords(tx, digest, nil, pending, func(k, v []byte) (bool, error) {
			var rec store.SignatureRecord
			if err := json.Unmarshal(v, &rec); err != nil {
				return false, fmt.Errorf("decode signature record %x: %w", k, errors.Join(errdefs.ErrInternal, err))
			}
			out = append(out, rec)
			return true, nil
		})
	})
	return out, err
}
