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

// PutSignature records rec and its audit event through the journal's
// group commit, shared with concurrent callers; it returns once they are
// on disk (journal.go). The journal later appends rec to bbolt under the
// seq of its audit record (sigrecords/), so it names its log leaf; its
// digest index entry is in memory until a merge persists it
// (sigindex.go).
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
	// Encode before the group commit: the less work its writer does
	// alone, the more callers one commit can serve. The hand-written
	// encoder writes json.Marshal's bytes (loggedSignature's prefilter,
	// recordDigest and SignaturesByDigest's json.Unmarshal read them)
	// without its reflection, a measurable share of a signature's CPU.
	raw, err := store.AppendSignatureRecordJSON(make([]byte, 0, store.SignatureRecordJSONSize(rec)), rec)
	if err != nil {
		return fmt.Errorf("encode signature record: %w", errors.Join(errdefs.ErrInternal, err))
	}

	if s.j == nil {
		return errReadOnly
	}
	// The journal writes rec under the seq of its audit record and, once
	// it applies them, indexes it by digest.
	_, err = s.j.do(ctx, ev, raw, rec.Digest, versionRef{rec.KeyName, rec.KeyVersion})
	if err != nil {
		return err
	}
	s.throttle(s.pendingEntries())
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
	// The journal's records first, into bbolt and the pending index: then
	// every pending key names a record the transaction sees
	// (signatureRecords).
	if s.j != nil {
		if err := s.j.sync(); err != nil {
			return nil, err
		}
	}
	pending := s.idx.keys(digest)
	var out []store.SignatureRecord
	err := s.view(ctx, func(tx *bolt.Tx) error {
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
