package etcdstore

import (
	"context"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/signerd/signerd/internal/store"
)

// PutSignature records rec and its audit event in one transaction, shared
// through group commit with concurrent callers of this process; it returns
// after that transaction is committed by the etcd quorum. rec is keyed by
// its digest and the seq of its audit record, so several records per
// digest are kept in the order they were committed.
func (s *Store) PutSignature(ctx context.Context, rec store.SignatureRecord, ev store.AuditEvent) error {
	if err := store.CheckSignatureRecord(rec); err != nil {
		return err
	}
	ev, err := store.PrepareSignatureEvent(rec, ev)
	if err != nil {
		return err
	}
	raw, err := encode(rec)
	if err != nil {
		return err
	}
	return s.submit(&write{ctx: ctx, ev: ev, sig: raw, digest: rec.Digest, signer: rec.KeyName, version: rec.KeyVersion})
}

// SignaturesByDigest returns every record for digest, oldest first; none is
// an empty result, not an error.
func (s *Store) SignaturesByDigest(ctx context.Context, digest []byte) ([]store.SignatureRecord, error) {
	if err := store.CheckDigest(digest); err != nil {
		return nil, err
	}
	return listJSON[store.SignatureRecord](ctx, s, s.l.signatures(digest))
}

// ForEachSignature calls fn with every signature record, by digest and then
// oldest first (store.Exporter), reading a page at a time at one revision.
func (s *Store) ForEachSignature(ctx context.Context, fn func(store.SignatureRecord) error) error {
	return s.forEach(ctx, s.l.signaturesDir(), func(kv *keyValue) error {
		rec, err := decode[store.SignatureRecord](kv)
		if err != nil {
			return err
		}
		return fn(rec)
	})
}

// pageSize is how many keys one read of a long range returns.
const pageSize = 1000

// forEach calls fn for every key under dir in key order, a page at a time,
// every page read at the revision of the first.
func (s *Store) forEach(ctx context.Context, dir string, fn func(*keyValue) error) error {
	return s.forEachFrom(ctx, dir, rangeEnd(dir), fn)
}

// forEachFrom is forEach over the keys in [from, end).
func (s *Store) forEachFrom(ctx context.Context, from, end string, fn func(*keyValue) error) error {
	var rev int64
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		opts := []clientv3.OpOption{clientv3.WithRange(end), clientv3.WithLimit(pageSize)}
		if rev > 0 {
			opts = append(opts, clientv3.WithRev(rev))
		}
		resp, err := s.cli.Get(ctx, from, opts...)
		if err != nil {
			return mapErr("read", err)
		}
		rev = resp.Header.Revision
		for _, kv := range resp.Kvs {
			if err := fn(kv); err != nil {
				return err
			}
		}
		if !resp.More || len(resp.Kvs) == 0 {
			return nil
		}
		from = string(resp.Kvs[len(resp.Kvs)-1].Key) + "\x00"
	}
}
