package boltstore

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"

	bolt "go.etcd.io/bbolt"

	"github.com/signerd/signerd/internal/errdefs"
	"github.com/signerd/signerd/internal/store"
)

var _ store.Exporter = (*Store)(nil)

// exportChunk is how many signature records ForEachSignature reads per read
// transaction (short transactions, as VerifyAudit's).
const exportChunk = 1024

// ForEachSignature calls fn with every signature record in key order:
// by digest, and oldest first within a digest (store.Exporter; store
// migrate copies them). fn runs outside the read transactions. Records
// signed while it runs may or may not be included.
func (s *Store) ForEachSignature(ctx context.Context, fn func(store.SignatureRecord) error) error {
	pending := s.idx.allKeys() // before any transaction, as signatureRecords needs
	var after []byte
	for {
		var (
			recs []store.SignatureRecord
			last []byte
			done = true
		)
		err := s.viewLog(ctx, func(tx *bolt.Tx) error {
			recs, last, done = nil, nil, true
			return signatureRecords(tx, nil, after, pending, func(k, v []byte) (bool, error) {
				if len(recs) == exportChunk {
					done = false
					return false, nil
				}
				var rec store.SignatureRecord
				if err := json.Unmarshal(v, &rec); err != nil {
					return false, fmt.Errorf("decode signature record %x: %w", k, errors.Join(errdefs.ErrInternal, err))
				}
				recs = append(recs, rec)
				last = bytes.Clone(k)
				return true, nil
			})
		})
		if err != nil {
			return err
		}
		for _, r := range recs {
			if err := fn(r); err != nil {
				return err
			}
		}
		if done {
			return nil
		}
		after = last
	}
}
