package boltstore

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math"

	bolt "go.etcd.io/bbolt"

	"github.com/signerd/signerd/internal/errdefs"
	"github.com/signerd/signerd/internal/store"
)

// AppendAudit records an event that changes no other state. It shares the
// journal's group commits with PutSignature: denials and failed
// verifications can be as frequent as signatures.
func (s *Store) AppendAudit(ctx context.Context, ev store.AuditEvent) (store.AuditRecord, error) {
	ev, err := store.PrepareEvent(ev)
	if err != nil {
		return store.AuditRecord{}, err
	}
	if s.j == nil {
		return store.AuditRecord{}, errReadOnly
	}
	return s.j.do(ctx, ev, nil, nil, versionRef{})
}

// appendAudit chains ev after the head recorded in tx and moves the head:
// the log's appends outside the journal (Store.update), and the
// migrations'.
func appendAudit(tx *bolt.Tx, ev store.AuditEvent) (store.AuditRecord, error) {
	audit, err := bucket(tx, bucketKeyAudit)
	if err != nil {
		return store.AuditRecord{}, err
	}
	// Records only ever go at the end: pages split full rather than half
	// full (bbolt's default, right for random keys), so the log takes half
	// the pages and a commit writes fewer.
	audit.FillPercent = appendFill
	meta, err := bucket(tx, bucketKeyMeta)
	if err != nil {
		return store.AuditRecord{}, err
	}
	seq, prev, err := readHead(meta)
	if err != nil {
		return store.AuditRecord{}, err
	}
	rec := store.AuditRecord{Seq: seq + 1, PrevHash: prev, AuditEvent: ev}
	rec.Hash = store.HashAuditRecord(rec)
	key := seqKey(rec.Seq)
	// A record already past the head means the file was tampered with or
	// damaged; overwriting it would destroy the evidence.
	if audit.Get(key) != nil {
		return store.AuditRecord{}, fmt.Errorf("audit log damaged: a record already exists at seq %d, past the head (run audit verify): %w",
			rec.Seq, errdefs.ErrInternal)
	}
	// json.Marshal's bytes, from the hand-written encoder (the journal
	// writes the same).
	raw, err := store.AppendAuditRecordJSON(make([]byte, 0, store.AuditRecordJSONSize(rec)), rec)
	if err != nil {
		return store.AuditRecord{}, fmt.Errorf("encode %q: %w", key, errors.Join(errdefs.ErrInternal, err))
	}
	if err := audit.Put(key, raw); err != nil {
		return store.AuditRecord{}, err
	}
	if err := meta.Put(keyAuditHead, append(seqKey(rec.Seq), rec.Hash...)); err != nil {
		return store.AuditRecord{}, err
	}
	// The record is also the tree's next leaf, appended in the same
	// transaction (tree.go): O(log n) node writes, no reread of the log.
	// A signature's record is found from the signature record, whose key
	// names this seq (PutSignature): no index entry here.
	if err := appendLeaves(tx, seq, [][]byte{store.LeafHash(rec)}); err != nil {
		return store.AuditRecord{}, err
	}
	return rec, nil
}

func seqKey(seq uint64) []byte { return binary.BigEndian.AppendUint64(nil, seq) }

// readHead returns the last audit record's seq and hash: 0 and
// store.GenesisHash() for an empty log.
func readHead(meta *bolt.Bucket) (uint64, []byte, error) {
	raw := meta.Get(keyAuditHead)
	if raw == nil {
		return 0, store.GenesisHash(), nil
	}
	if len(raw) != 8+store.AuditHashSize {
		return 0, nil, fmt.Errorf("audit head is %d bytes, want %d: %w", len(raw), 8+store.AuditHashSize, errdefs.ErrInternal)
	}
	return binary.BigEndian.Uint64(raw[:8]), bytes.Clone(raw[8:]), nil
}

// ListAudit returns the records with Seq > since in ascending order, at most
// limit of them (0: all).
func (s *Store) ListAudit(ctx context.Context, since uint64, limit int) ([]store.AuditRecord, error) {
	if limit < 0 {
		return nil, store.Invalid("limit %d is negative", limit)
	}
	if since == math.MaxUint64 {
		return nil, nil
	}
	var out []store.AuditRecord
	err := s.viewLog(ctx, func(tx *bolt.Tx) error {
		audit, err := bucket(tx, bucketKeyAudit)
		if err != nil {
			return err
		}
		c := audit.Cursor()
		for k, v := c.Seek(seqKey(since + 1)); k != nil && (limit == 0 || len(out) < limit); k, v = c.Next() {
			// DecodeAuditRecordJSON is json.Unmarshal, at a fraction of
			// its cost on the records the store writes: every checkpoint
			// re-reads those appended since the last one.
			r, err := store.DecodeAuditRecordJSON(v)
			if err != nil {
				return fmt.Errorf("decode audit record %x: %w", k, errors.Join(errdefs.ErrInternal, err))
			}
			out = append(out, r)
		}
		return nil
	})
	return out, err
}

// AuditHead returns the seq and hash of the last audit record as recorded
// in the chain head: 0 and store.GenesisHash() for an empty log. An
// external checkpoint of this pair lets a later VerifyAudit prove that no
// record up to it was rewritten.
func (s *Store) AuditHead(ctx context.Context) (seq uint64, hash []byte, err error) {
	if s.j != nil {
		// The newest record acknowledged, applied to bbolt or not: no
		// apply for a metrics scrape.
		if err := ctx.Err(); err != nil {
			return 0, nil, err
		}
		seq, hash = s.j.head()
		return seq, hash, nil
	}
	err = s.view(ctx, func(tx *bolt.Tx) error {
		meta, err := bucket(tx, bucketKeyMeta)
		if err != nil {
			return err
		}
		seq, hash, err = readHead(meta)
		return err
	})
	return seq, hash, err
}

// getAuditRecord is getJSON for an audit record, decoded by
// store.DecodeAuditRecordJSON (json.Unmarshal's result, cheaper).
func getAuditRecord(audit *bolt.Bucket, seq uint64) (rec store.AuditRecord, ok bool, err error) {
	k := seqKey(seq)
	raw := audit.Get(k)
	if raw == nil {
		return rec, false, nil
	}
	if rec, err = store.DecodeAuditRecordJSON(raw); err != nil {
		return rec, false, fmt.Errorf("decode %q: %w", k, errors.Join(errdefs.ErrInternal, err))
	}
	return rec, true, nil
}
