package boltstore

import (
	"context"
	"fmt"

	bolt "go.etcd.io/bbolt"

	"github.com/signerd/signerd/internal/errdefs"
	"github.com/signerd/signerd/internal/store"
)

// SetLogKey records the log's note key under meta/log_key, with its audit
// event, in one transaction. ErrAlreadyExists if one is recorded:
// replacing it would orphan every note it signed.
func (s *Store) SetLogKey(ctx context.Context, k store.Key, ev store.AuditEvent) error {
	k, err := store.PrepareAuditKey(k)
	if err != nil {
		return err
	}
	ev, err = store.PrepareEvent(ev)
	if err != nil {
		return err
	}
	return update(ctx, s.db, func(tx *bolt.Tx) error {
		meta, err := bucket(tx, bucketKeyMeta)
		if err != nil {
			return err
		}
		if meta.Get(keyLogKey) != nil {
			return fmt.Errorf("a log key is already recorded: %w", errdefs.ErrAlreadyExists)
		}
		if err := putJSON(meta, keyLogKey, k); err != nil {
			return err
		}
		_, err = appendAudit(tx, ev)
		return err
	})
}

// LogKey returns the log's note key; ErrNotFound if none is recorded.
func (s *Store) LogKey(ctx context.Context) (store.Key, error) {
	var k store.Key
	err := view(ctx, s.db, func(tx *bolt.Tx) error {
		meta, err := bucket(tx, bucketKeyMeta)
		if err != nil {
			return err
		}
		var ok bool
		k, ok, err = getJSON[store.Key](meta, keyLogKey)
		if err == nil && !ok {
			err = fmt.Errorf("no log key is recorded: %w", errdefs.ErrNotFound)
		}
		return err
	})
	return k, err
}
