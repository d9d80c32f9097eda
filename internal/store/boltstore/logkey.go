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
	return s.setServiceKey(ctx, keyLogKey, "a log key", k, ev)
}

// LogKey returns the log's note key; ErrNotFound if none is recorded.
func (s *Store) LogKey(ctx context.Context) (store.Key, error) {
	return s.serviceKey(ctx, keyLogKey, "log key")
}

// setServiceKey records one of signerd's own keys (the audit key, the log
// key) under meta/name with its audit event, once: ErrAlreadyExists if
// one is recorded.
func (s *Store) setServiceKey(ctx context.Context, name []byte, what string, k store.Key, ev store.AuditEvent) error {
	k, err := store.PrepareAuditKey(k)
	if err != nil {
		return err
	}
	ev, err = store.PrepareEvent(ev)
	if err != nil {
		return err
	}
	return s.update(ctx, func(tx *bolt.Tx) error {
		meta, err := bucket(tx, bucketKeyMeta)
		if err != nil {
			return err
		}
		if meta.Get(name) != nil {
			return fmt.Errorf("%s is already recorded: %w", what, errdefs.ErrAlreadyExists)
		}
		if err := putJSON(meta, name, k); err != nil {
			return err
		}
		_, err = appendAudit(tx, ev)
		return err
	})
}

// serviceKey returns the key setServiceKey recorded under meta/name;
// ErrNotFound if none is.
func (s *Store) serviceKey(ctx context.Context, name []byte, what string) (store.Key, error) {
	var k store.Key
	err := s.view(ctx, func(tx *bolt.Tx) error {
		meta, err := bucket(tx, bucketKeyMeta)
		if err != nil {
			return err
		}
		var ok bool
		k, ok, err = getJSON[store.Key](meta, name)
		if err == nil && !ok {
			err = fmt.Errorf("no %s is recorded: %w", what, errdefs.ErrNotFound)
		}
		return err
	})
	return k, err
}
