package etcdstore

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/signerd/signerd/internal/errdefs"
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
//
// The grants that still carry the key are read with the org, returned and
// named in the audit detail (store.StillTrustedVia). The transaction
// requires the org and its child orgs unchanged (changeOrgWith), so a
// grant made or ended meanwhile is seen, and so is a child's own trust
// change, however many grants the org has.
func (s *Store) RemoveTrust(ctx context.Context, org, fingerprint string, at time.Time, ev store.AuditEvent) ([]string, error) {
	edit, err := store.EditRemoveTrust(org, fingerprint, at)
	if err != nil {
		return nil, err
	}
	// The names a refusal answers with: the last prepared.
	var last []string
	reads := func(o store.Org) []string {
		var keys []string
		for _, c := range store.ActiveGrants(o) {
			keys = append(keys, s.l.org(c))
		}
		return keys
	}
	w, err := s.changeOrgWith(ctx, org, ev, reads, func(o *store.Org, got map[string]*mvccpb.KeyValue, ev *store.AuditEvent, w *write) error {
		children := map[string]store.Org{}
		for _, c := range store.ActiveGrants(*o) {
			if kv := got[s.l.org(c)]; kv != nil {
				child, err := decode[store.Org](kv)
				if err != nil {
					return err
				}
				children[c] = child
			}
		}
		last = store.StillTrustedVia(*o, children, fingerprint)
		ev.Detail = store.WithStillTrustedVia(ev.Detail, last)
		w.result = last
		return edit(o)
	})
	if err != nil {
		return last, err
	}
	// The committed attempt's names.
	via, _ := w.result.([]string)
	return via, nil
}

// maxComparedKeys is how many compares changeOrgWith's transaction makes
// for the keys it read, well within etcd's 128 compares.
const maxComparedKeys = 100

// unchangedSince is at most max compares that every one of keys is
// unchanged since revision rev: keys sorted and cut into max runs of
// consecutive ones, each compared as the range from its first to its last
// (every key in a range must pass, and an absent one does; a key created
// since fails it). A key sorting inside a run that was changed since makes
// the compare fail needlessly, so runs are kept as short as max allows:
// one compare over all the orgs failed with any org change anywhere, and
// a removal from an org with many grants never committed while an admin
// script changed other orgs. A key deleted since is not seen (signerd
// never deletes an org).
func unchangedSince(keys []string, rev int64, max int) []clientv3.Cmp {
	sorted := slices.Clone(keys)
	slices.Sort(sorted)
	sorted = slices.Compact(sorted)
	if len(sorted) == 0 || max < 1 {
		return nil
	}
	per := (len(sorted) + max - 1) / max
	var cmps []clientv3.Cmp
	for run := range slices.Chunk(sorted, per) {
		cmps = append(cmps, clientv3.Compare(clientv3.ModRevision(run[0]), "<", rev+1).WithRange(run[len(run)-1]+"\x00"))
	}
	return cmps
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
	var reads func(store.Org) []string
	if read != "" {
		reads = func(store.Org) []string { return []string{read} }
	}
	_, err := s.changeOrgWith(ctx, id, ev, reads, func(o *store.Org, got map[string]*mvccpb.KeyValue, _ *store.AuditEvent, _ *write) error {
		return change(o, got[read])
	})
	return err
}

// changeOrgWith is the general read-modify-write of one org: reads (nil
// for none) names the other etcd keys the change depends on, given the org
// as read; the change gets their values (absent ones missing) and may
// complete the audit event (rebuilt from ev for each attempt) and set
// w.result. The transaction requires the org and the keys read unchanged:
// each key, up to maxComparedKeys of them (etcd allows 128 compares in a
// transaction); past that, which only org records may be, the keys in
// sorted runs (unchangedSince), so a change to one of them since the read,
// or to an org whose name sorts among them, makes the write read again. It
// returns the committed write.
func (s *Store) changeOrgWith(ctx context.Context, id string, ev store.AuditEvent, reads func(store.Org) []string,
	change func(*store.Org, map[string]*mvccpb.KeyValue, *store.AuditEvent, *write) error) (*write, error) {
	ev, err := store.PrepareEvent(ev)
	if err != nil {
		return nil, err
	}
	key := s.l.org(id)
	w := &write{ctx: ctx, ev: ev}
	// prepare runs on the committer, which builds the audit record from
	// w.ev after it.
	w.prepare = func(ctx context.Context) ([]clientv3.Cmp, []clientv3.Op, error) {
		kv, err := s.get(ctx, key)
		if err != nil {
			return nil, nil, err
		}
		o := store.Org{ID: id}
		if kv != nil {
			if o, err = decode[store.Org](kv); err != nil {
				return nil, nil, err
			}
		}
		cmps := []clientv3.Cmp{unchanged(key, kv)}
		got := map[string]*mvccpb.KeyValue{}
		if reads != nil {
			keys := reads(o)
			others, rev, err := s.getManyAt(ctx, keys...)
			if err != nil {
				return nil, nil, err
			}
			for i, r := range keys {
				got[r] = others[i]
			}
			if len(keys) <= maxComparedKeys {
				for i, r := range keys {
					cmps = append(cmps, unchanged(r, others[i]))
				}
			} else {
				for _, r := range keys {
					if !strings.HasPrefix(r, s.l.orgsDir()) {
						return nil, nil, fmt.Errorf("%d keys read, %q not an org's: %w", len(keys), r, errdefs.ErrInternal)
					}
				}
				cmps = append(cmps, unchangedSince(keys, rev, maxComparedKeys)...)
			}
		}
		w.ev = ev
		if err := change(&o, got, &w.ev, w); err != nil {
			return nil, nil, err
		}
		o.UpdatedAt = ev.Time
		raw, err := encode(o)
		if err != nil {
			return nil, nil, err
		}
		return cmps, []clientv3.Op{clientv3.OpPut(key, raw)}, nil
	}
	if err := s.submit(w); err != nil {
		return nil, err
	}
	return w, nil
}
