package etcdstore

import (
	"context"
	"fmt"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/signerd/signerd/internal/errdefs"
	"github.com/signerd/signerd/internal/store"
)

// SetLogKey records the log's note key under audit/logkey, with its audit
// event, in one transaction that requires the key to be absent (replicas
// starting together race here; exactly one wins).
func (s *Store) SetLogKey(ctx context.Context, k store.Key, ev store.AuditEvent) error {
	return s.setServiceKey(ctx, s.l.logKey(), "a log key", k, ev)
}

// LogKey returns the log's note key; ErrNotFound if none is recorded.
func (s *Store) LogKey(ctx context.Context) (store.Key, error) {
	return s.serviceKey(ctx, s.l.logKey(), "log key")
}

// setServiceKey records one of signerd's own keys (the audit key, the log
// key) under key with its audit event, in one transaction that requires
// key to be absent: ErrAlreadyExists if one is recorded (two replicas
// starting on an empty store race here, and exactly one wins).
func (s *Store) setServiceKey(ctx context.Context, key, what string, k store.Key, ev store.AuditEvent) error {
	k, err := store.PrepareAuditKey(k)
	if err != nil {
		return err
	}
	ev, err = store.PrepareEvent(ev)
	if err != nil {
		return err
	}
	raw, err := encode(k)
	if err != nil {
		return err
	}
	return s.submit(&write{ctx: ctx, ev: ev, prepare: func(ctx context.Context) ([]clientv3.Cmp, []clientv3.Op, error) {
		kv, err := s.get(ctx, key)
		if err != nil {
			return nil, nil, err
		}
		if kv != nil {
			return nil, nil, fmt.Errorf("%s is already recorded: %w", what, errdefs.ErrAlreadyExists)
		}
		return []clientv3.Cmp{absent(key)}, []clientv3.Op{clientv3.OpPut(key, raw)}, nil
	}})
}

// serviceKey returns the key setServiceKey recorded under key;
// ErrNotFound if none is.
func (s *Store) serviceKey(ctx context.Context, key, what string) (store.Key, error) {
	if err := ctx.Err(); err != nil {
		return store.Key{}, err
	}
	kv, err := s.get(ctx, key)
	if err != nil {
		return store.Key{}, err
	}
	if kv == nil {
		return store.Key{}, fmt.Errorf("no %s is recorded: %w", what, errdefs.ErrNotFound)
	}
	return decode[store.Key](kv)
}
