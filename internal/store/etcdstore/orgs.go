package etcdstore

import (
	"context"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/signerd/signerd/internal/store"
)

// GetOrg returns the org; an org nobody configured is Org{ID: id}, which
// trusts nothing.
func (s *Store) GetOrg(ctx context.Context, id string) (store.Org, error) {
	if err := store.CheckName("org", id); err != nil {
		return store.Org{}, err
	}
	if err := ctx.Err(); err != nil {
		return store.Org{}, err
	}
	kv, err := s.get(ctx, s.l.org(id))
	if err != nil || kv == nil {
		return store.Org{ID: id}, err
	}
	return decode[store.Org](kv)
}

// ListOrgs returns every configured org ordered by ID (byte order).
func (s *Store) ListOrgs(ctx context.Context) ([]store.Org, error) {
	return listJSON[store.Org](ctx, s, s.l.orgsDir())
}

// TrustKey makes the org trust k (creating the org if needed). A removed
// entry for the same fingerprint is re-activated in place with k's fields;
// ErrAlreadyExists if the org already actively trusts the fingerprint.
func (s *Store) TrustKey(ctx context.Context, org string, k store.TrustedKey, ev store.AuditEvent) error {
	edit, err := store.EditTrustKey(org, k)
	if err != nil {
		return err
	}
	return s.changeOrg(ctx, org, ev, edit)
}

// TrustKeyVersion is TrustKey for a version of key keyName, which the
// transaction that writes the org requires unchanged since it was read and
// found active (store.EditTrustKeyVersion).
func (s *Store) TrustKeyVersion(ctx context.Context, org, keyName string, k store.TrustedKey, ev store.AuditEvent) error {
	edit, err := store.EditTrustKeyVersion(org, keyName, k)
	if err != nil {
		return err
	}
	return s.changeOrgReading(ctx, org, ev, s.l.key(keyName), withKey(edit))
}

// withKey adapts an org edit that depends on a key to changeOrgReading,
// decoding the key's etcd value (nil: no such key).
func withKey(edit func(*store.Org, store.Key, bool) error) func(*store.Org, *mvccpb.KeyValue) error {
	return func(o *store.Org, kv *mvccpb.KeyValue) error {
		if kv == nil {
			return edit(o, store.Key{}, false)
		}
		k, err := decode[store.Key](kv)
		if err != nil {
			return err
		}
		return edit(o, k, true)
	}
}

// CarryTrust makes org trust next, the version of key keyName after prev,
// if the commit finds the carry still right (store.EditCarryTrust): the
// transaction that writes the org also requires the key unchanged since
// it was read.
func (s *Store) CarryTrust(ctx context.Context, org, keyName, prev string, next store.TrustedKey, ev store.AuditEvent) error {
	edit, err := store.EditCarryTrust(org, keyName, prev, next)
	if err != nil {
		return err
	}
	return s.changeOrgReading(ctx, org, ev, s.l.key(keyName), withKey(edit))
}

// RemoveTrust marks the org's trust in fingerprint removed at at; the entry
// stays so verification can tell a removed key from an unknown one.
// ErrNotFound if the org does not actively trust the fingerprint.
func (s *Store) RemoveTrust(ctx context.Context, org, fingerprint string, at time.Time, ev store.AuditEvent) error {
	edit, err := store.EditRemoveTrust(org, fingerprint, at)
	if err != nil {
		return err
	}
	return s.changeOrg(ctx, org, ev, edit)
}

// GrantTrust records grant(parent, child) at at, re-activating a revoked
// grant in place. ErrInvalidArgument if parent == child; ErrAlreadyExists if
// the grant is active.
func (s *Store) GrantTrust(ctx context.Context, parent, child string, at time.Time, ev store.AuditEvent) error {
	edit, err := store.EditGrantTrust(parent, child, at)
	if err != nil {
		return err
	}
	return s.changeOrg(ctx, parent, ev, edit)
}

// RevokeGrant ends grant(parent, child) at at. ErrNotFound if no such grant
// is active.
func (s *Store) RevokeGrant(ctx context.Context, parent, child string, at time.Time, ev store.AuditEvent) error {
	edit, err := store.EditRevokeGrant(parent, child, at)
	if err != nil {
		return err
	}
	return s.changeOrg(ctx, parent, ev, edit)
}

// SetRequireSignatures sets the org's policy, creating the org if needed.
func (s *Store) SetRequireSignatures(ctx context.Context, org string, require bool, ev store.AuditEvent) error {
	edit, err := store.EditRequireSignatures(org, require)
	if err != nil {
		return err
	}
	return s.changeOrg(ctx, org, ev, edit)
}

// changeOrg is the read-modify-write of one org with its audit record:
// change edits the org as read (or refuses with an error, writing
// nothing); the transaction requires the org's mod revision to be the one
// read, so a concurrent change through another replica is never lost (the
// edit is re-applied to the newer org instead).
func (s *Store) changeOrg(ctx context.Context, id string, ev store.AuditEvent, change func(*store.Org) error) error {
	return s.changeOrgReading(ctx, id, ev, "", func(o *store.Org, _ *mvccpb.KeyValue) error { return change(o) })
}

// changeOrgReading is changeOrg for a change that also depends on another
// etcd key (read is its name, "" for none): the change is given its value
// (nil if absent), and the transaction requires it unchanged.
func (s *Store) changeOrgReading(ctx context.Context, id string, ev store.AuditEvent, read string, change func(*store.Org, *mvccpb.KeyValue) error) error {
	ev, err := store.PrepareEvent(ev)
	if err != nil {
		return err
	}
	key := s.l.org(id)
	return s.submit(&write{ctx: ctx, ev: ev, prepare: func(ctx context.Context) ([]clientv3.Cmp, []clientv3.Op, error) {
		kv, err := s.get(ctx, key)
		if err != nil {
			return nil, nil, err
		}
		var other *mvccpb.KeyValue
		if read != "" {
			if other, err = s.get(ctx, read); err != nil {
				return nil, nil, err
			}
		}
		o := store.Org{ID: id}
		if kv != nil {
			if o, err = decode[store.Org](kv); err != nil {
				return nil, nil, err
			}
		}
		if err := change(&o, other); err != nil {
			return nil, nil, err
		}
		o.UpdatedAt = ev.Time
		raw, err := encode(o)
		if err != nil {
			return nil, nil, err
		}
		cmps := []clientv3.Cmp{unchanged(key, kv)}
		if read != "" {
			cmps = append(cmps, unchanged(read, other))
		}
		return cmps, []clientv3.Op{clientv3.OpPut(key, raw)}, nil
	}})
}
