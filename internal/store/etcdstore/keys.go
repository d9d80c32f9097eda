package etcdstore

import (
	"context"
	"fmt"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/signerd/signerd/internal/errdefs"
	"github.com/signerd/signerd/internal/store"
)

func errKeyNotFound(name string) error {
	return errdefs.WithReason(errdefs.ReasonKeyNotFound, fmt.Errorf("key %q: %w", name, errdefs.ErrNotFound))
}

// fingerprintRef is the value of a fingerprints/ index entry.
type fingerprintRef struct {
	Key     string `json:"key"`
	Version uint32 `json:"version"`
}

// absent is the compare that key does not exist.
func absent(key string) clientv3.Cmp {
	return clientv3.Compare(clientv3.CreateRevision(key), "=", 0)
}

// unchanged is the compare that key is as read (kv nil: still absent).
func unchanged(key string, kv *mvccpb.KeyValue) clientv3.Cmp {
	var rev int64
	if kv != nil {
		rev = kv.ModRevision
	}
	return clientv3.Compare(clientv3.ModRevision(key), "=", rev)
}

// CreateKey records a new key with its versions, numbered from 1, and
// indexes their fingerprints and CKA_IDs, in one transaction that requires
// the name and every index entry to be absent. ErrAlreadyExists if the
// name, or any version's fingerprint or CKA_ID, is already used by a key.
func (s *Store) CreateKey(ctx context.Context, k store.Key, ev store.AuditEvent) error {
	k, err := store.PrepareNewKey(k)
	if err != nil {
		return err
	}
	if len(k.Versions) > maxBatch/2 {
		return store.Invalid("key %q has %d versions; at most %d can be created at once", k.Name, len(k.Versions), maxBatch/2)
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
		kv, err := s.get(ctx, s.l.key(k.Name))
		if err != nil {
			return nil, nil, err
		}
		if kv != nil {
			return nil, nil, errdefs.WithReason(errdefs.ReasonKeyExists, fmt.Errorf("key %q: %w", k.Name, errdefs.ErrAlreadyExists))
		}
		cmps := []clientv3.Cmp{absent(s.l.key(k.Name))}
		ops := []clientv3.Op{clientv3.OpPut(s.l.key(k.Name), raw)}
		for _, v := range k.Versions {
			c, o, err := s.indexVersion(ctx, k.Name, v)
			if err != nil {
				return nil, nil, err
			}
			cmps, ops = append(cmps, c...), append(ops, o...)
		}
		return cmps, ops, nil
	}})
}

// indexVersion returns the compares and puts that add v to the fingerprint
// and CKA_ID indexes, refusing values some key already uses.
func (s *Store) indexVersion(ctx context.Context, name string, v store.KeyVersion) ([]clientv3.Cmp, []clientv3.Op, error) {
	fpKey, idKey := s.l.fingerprint(v.Fingerprint), s.l.ckaID(v.CKAID)
	kvs, err := s.getMany(ctx, fpKey, idKey)
	if err != nil {
		return nil, nil, err
	}
	if kvs[0] != nil {
		ref, _ := decode[fingerprintRef](kvs[0])
		return nil, nil, fmt.Errorf("fingerprint %s is already key %q's: %w", v.Fingerprint, ref.Key, errdefs.ErrAlreadyExists)
	}
	if kvs[1] != nil {
		return nil, nil, fmt.Errorf("CKA_ID %x is already key %q's: %w", v.CKAID, kvs[1].Value, errdefs.ErrAlreadyExists)
	}
	ref, err := encode(fingerprintRef{Key: name, Version: v.Version})
	if err != nil {
		return nil, nil, err
	}
	return []clientv3.Cmp{absent(fpKey), absent(idKey)},
		[]clientv3.Op{clientv3.OpPut(fpKey, ref), clientv3.OpPut(idKey, name)}, nil
}

// AddKeyVersion appends v to the named key. v.Version must be the key's
// last version + 1: ErrAlreadyExists if that version exists (a concurrent
// rotation won), ErrInvalidArgument if it skips. ErrAlreadyExists also if
// v's fingerprint or CKA_ID is used by any key.
func (s *Store) AddKeyVersion(ctx context.Context, name string, v store.KeyVersion, ev store.AuditEvent) error {
	if err := store.CheckName("key name", name); err != nil {
		return err
	}
	v, err := store.PrepareVersion(v)
	if err != nil {
		return fmt.Errorf("key %q: %w", name, err)
	}
	if ev, err = store.PrepareEvent(ev); err != nil {
		return err
	}
	return s.submit(&write{ctx: ctx, ev: ev, prepare: func(ctx context.Context) ([]clientv3.Cmp, []clientv3.Op, error) {
		kv, err := s.get(ctx, s.l.key(name))
		if err != nil {
			return nil, nil, err
		}
		if kv == nil {
			return nil, nil, errKeyNotFound(name)
		}
		k, err := decode[store.Key](kv)
		if err != nil {
			return nil, nil, err
		}
		// The transaction compares the key record read here.
		if err := store.CheckCanAddVersion(k); err != nil {
			return nil, nil, err
		}
		last := uint32(len(k.Versions))
		switch {
		case v.Version == 0:
			return nil, nil, store.Invalid("key %q: versions are numbered from 1", name)
		case v.Version <= last:
			return nil, nil, fmt.Errorf("key %q already has version %d: %w", name, v.Version, errdefs.ErrAlreadyExists)
		case v.Version != last+1:
			return nil, nil, store.Invalid("key %q: next version is %d, not %d", name, last+1, v.Version)
		}
		cmps, ops, err := s.indexVersion(ctx, name, v)
		if err != nil {
			return nil, nil, err
		}
		k.Versions = append(k.Versions, v)
		raw, err := encode(k)
		if err != nil {
			return nil, nil, err
		}
		return append(cmps, unchanged(s.l.key(name), kv)), append(ops, clientv3.OpPut(s.l.key(name), raw)), nil
	}})
}

// RevokeKeyVersions revokes the key's active versions, or escalates a
// revoked key to key_compromise, as store.EditRevokeKey defines.
// ErrNotFound for an unknown key; ErrFailedPrecondition for any other
// change to a revoked key (revoking twice is a mistake worth telling the
// operator, not a silent success).
func (s *Store) RevokeKeyVersions(ctx context.Context, name string, reason store.RevocationReason, at time.Time, ev store.AuditEvent) (store.RevocationReason, error) {
	edit, err := store.EditRevokeKey(name, reason, at)
	if err != nil {
		return "", err
	}
	ev, err = store.PrepareEvent(ev)
	if err != nil {
		return "", err
	}
	detail := ev.Detail
	w := &write{ctx: ctx, ev: ev}
	// prepare runs on the committer, which builds the audit record from
	// w.ev after it: each attempt's record says what its edit did.
	w.prepare = func(ctx context.Context) ([]clientv3.Cmp, []clientv3.Op, error) {
		kv, err := s.get(ctx, s.l.key(name))
		if err != nil {
			return nil, nil, err
		}
		if kv == nil {
			return nil, nil, errKeyNotFound(name)
		}
		k, err := decode[store.Key](kv)
		if err != nil {
			return nil, nil, err
		}
		from, err := edit(&k)
		if err != nil {
			return nil, nil, err
		}
		w.ev.Detail = store.WithEscalation(detail, from)
		w.result = from
		raw, err := encode(k)
		if err != nil {
			return nil, nil, err
		}
		return []clientv3.Cmp{unchanged(s.l.key(name), kv)}, []clientv3.Op{clientv3.OpPut(s.l.key(name), raw)}, nil
	}
	if err := s.submit(w); err != nil {
		return "", err
	}
	// The committed attempt's.
	from, _ := w.result.(store.RevocationReason)
	return from, nil
}

// GetKey returns the named key; ErrNotFound (reason KEY_NOT_FOUND) if absent.
func (s *Store) GetKey(ctx context.Context, name string) (store.Key, error) {
	if err := store.CheckName("key name", name); err != nil {
		return store.Key{}, err
	}
	if err := ctx.Err(); err != nil {
		return store.Key{}, err
	}
	kv, err := s.get(ctx, s.l.key(name))
	if err != nil {
		return store.Key{}, err
	}
	if kv == nil {
		return store.Key{}, errKeyNotFound(name)
	}
	return decode[store.Key](kv)
}

// ListKeys returns every key ordered by name (byte order).
func (s *Store) ListKeys(ctx context.Context) ([]store.Key, error) {
	return listJSON[store.Key](ctx, s, s.l.keysDir())
}

// listJSON decodes every value under dir, in key order.
func listJSON[T any](ctx context.Context, s *Store, dir string) ([]T, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	resp, err := s.cli.Get(ctx, dir, clientv3.WithPrefix())
	if err != nil {
		return nil, mapErr("read", err)
	}
	var out []T
	for _, kv := range resp.Kvs {
		v, err := decode[T](kv)
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, nil
}

// FindKeyVersion returns the key and version with the fingerprint (exact
// match); ErrNotFound if no key of ours has it. The index entry and the key
// are read at one revision.
func (s *Store) FindKeyVersion(ctx context.Context, fingerprint string) (store.Key, store.KeyVersion, error) {
	if err := store.CheckName("fingerprint", fingerprint); err != nil {
		return store.Key{}, store.KeyVersion{}, err
	}
	if err := ctx.Err(); err != nil {
		return store.Key{}, store.KeyVersion{}, err
	}
	resp, err := s.cli.Get(ctx, s.l.fingerprint(fingerprint))
	if err != nil {
		return store.Key{}, store.KeyVersion{}, mapErr("read", err)
	}
	if len(resp.Kvs) == 0 {
		return store.Key{}, store.KeyVersion{}, errdefs.WithReason(errdefs.ReasonKeyNotFound,
			fmt.Errorf("no key has fingerprint %s: %w", fingerprint, errdefs.ErrNotFound))
	}
	ref, err := decode[fingerprintRef](resp.Kvs[0])
	if err != nil {
		return store.Key{}, store.KeyVersion{}, err
	}
	kresp, err := s.cli.Get(ctx, s.l.key(ref.Key), clientv3.WithRev(resp.Header.Revision))
	if err != nil {
		return store.Key{}, store.KeyVersion{}, mapErr("read", err)
	}
	if len(kresp.Kvs) == 1 {
		k, err := decode[store.Key](kresp.Kvs[0])
		if err != nil {
			return store.Key{}, store.KeyVersion{}, err
		}
		if v := ref.Version; v >= 1 && int(v) <= len(k.Versions) && k.Versions[v-1].Fingerprint == fingerprint {
			return k, k.Versions[v-1], nil
		}
	}
	return store.Key{}, store.KeyVersion{}, fmt.Errorf("fingerprint index points at key %q version %d, which does not have it: %w", ref.Key, ref.Version, errdefs.ErrInternal)
}
