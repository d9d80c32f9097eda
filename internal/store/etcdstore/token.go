package etcdstore

import (
	"context"
	"errors"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/signerd/signerd/internal/store"
)

var _ store.TokenPinner = (*Store)(nil)

// PinToken records t if no token is recorded (see store.TokenPinner), in
// one transaction that requires the key to be absent, so replicas starting
// together on an empty store record one token.
func (s *Store) PinToken(ctx context.Context, t store.HSMToken, ev store.AuditEvent) (store.HSMToken, bool, error) {
	ev, err := store.PrepareEvent(ev)
	if err != nil {
		return store.HSMToken{}, false, err
	}
	raw, err := encode(t)
	if err != nil {
		return store.HSMToken{}, false, err
	}
	key := s.l.prefix + "meta/hsm-token"
	var (
		recorded store.HSMToken
		found    bool
	)
	err = s.submit(&write{ctx: ctx, ev: ev, prepare: func(ctx context.Context) ([]clientv3.Cmp, []clientv3.Op, error) {
		kv, err := s.get(ctx, key)
		if err != nil {
			return nil, nil, err
		}
		if kv != nil {
			// Recorded already (by an earlier start or a racing replica):
			// nothing to write, so the write is abandoned.
			if recorded, err = decode[store.HSMToken](kv); err != nil {
				return nil, nil, err
			}
			found = true
			return nil, nil, errTokenRecorded
		}
		return []clientv3.Cmp{absent(key)}, []clientv3.Op{clientv3.OpPut(key, raw)}, nil
	}})
	switch {
	case err == nil:
		// An attempt of this call recorded it, even if a later
		// preparation, run while that attempt's outcome was unknown,
		// found it recorded already.
		return t, true, nil
	case found && errors.Is(err, errTokenRecorded):
		return recorded, false, nil
	}
	return store.HSMToken{}, false, err
}

// errTokenRecorded abandons PinToken's write when a token is recorded.
var errTokenRecorded = errors.New("a token is already recorded")
