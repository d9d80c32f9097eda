package etcdstore

import (
	"context"
	"math"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/signerd/signerd/internal/store"
)

// AppendAudit records an event that changes no other state. It shares
// transactions with PutSignature (group commit).
func (s *Store) AppendAudit(ctx context.Context, ev store.AuditEvent) (store.AuditRecord, error) {
	ev, err := store.PrepareEvent(ev)
	if err != nil {
		return store.AuditRecord{}, err
	}
	w := &write{ctx: ctx, ev: ev}
	if err := s.submit(w); err != nil {
		return store.AuditRecord{}, err
	}
	return w.rec, nil
}

// ListAudit returns the records with Seq > since in ascending order, at most
// limit of them (0: all).
func (s *Store) ListAudit(ctx context.Context, since uint64, limit int) ([]store.AuditRecord, error) {
	if limit < 0 {
		return nil, store.Invalid("limit %d is negative", limit)
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if since == math.MaxUint64 {
		return nil, nil
	}
	from := s.l.record(since + 1)
	if limit == 0 {
		var out []store.AuditRecord
		err := s.forEachFrom(ctx, from, rangeEnd(s.l.recordsDir()), func(kv *keyValue) error {
			r, err := decode[store.AuditRecord](kv)
			out = append(out, r)
			return err
		})
		return out, err
	}
	resp, err := s.cli.Get(ctx, from, clientv3.WithRange(rangeEnd(s.l.recordsDir())), clientv3.WithLimit(int64(limit)))
	if err != nil {
		return nil, mapErr("read", err)
	}
	out := make([]store.AuditRecord, 0, len(resp.Kvs))
	for _, kv := range resp.Kvs {
		r, err := decode[store.AuditRecord](kv)
		if err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	return out, nil
}

// AuditHead returns the seq and hash of the last audit record as recorded
// in the chain head: 0 and store.GenesisHash() for an empty log.
func (s *Store) AuditHead(ctx context.Context) (seq uint64, hash []byte, err error) {
	if err := ctx.Err(); err != nil {
		return 0, nil, err
	}
	kv, err := s.get(ctx, s.l.head())
	if err != nil {
		return 0, nil, err
	}
	if kv == nil {
		return 0, store.GenesisHash(), nil
	}
	h, err := decodeHead(kv.Value)
	if err != nil {
		return 0, nil, err
	}
	return h.Seq, h.Hash, nil
}
