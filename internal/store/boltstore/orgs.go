package boltstore

import (
	"context"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/signerd/signerd/internal/store"
)

// GetOrg returns the org; an org nobody configured is Org{ID: id}, which
// trusts nothing.
func (s *Store) GetOrg(ctx context.Context, id string) (store.Org, error) {
	if err := store.CheckName("org", id); err != nil {
		return store.Org{}, err
	}
	var o store.Org
	err := s.view(ctx, func(tx *bolt.Tx) error {
		var err error
		o, err = loadOrg(tx, id)
		return err
	})
	return o, err
}

// ListOrgs returns every configured org ordered by ID (byte order).
func (s *Store) ListOrgs(ctx context.Context) ([]store.Org, error) {
	var out []store.Org
	err := s.view(ctx, func(tx *bolt.Tx) error {
		orgs, err := bucket(tx, bucketKeyOrgs)
		if err != nil {
			return err
		}
		return orgs.ForEach(func(id, raw []byte) error {
			o, err := decodeJSON[store.Org](id, raw)
			out = append(out, o)
			return err
		})
	})
	return out, err
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
// transaction that writes the org reads and requires active
// (store.EditTrustKeyVersion).
func (s *Store) TrustKeyVersion(ctx context.Context, org, keyName string, k store.TrustedKey, ev store.AuditEvent) error {
	edit, err := store.EditTrustKeyVersion(org, keyName, k)
	if err != nil {
		return err
	}
	return s.changeOrgTx(ctx, org, ev, func(tx *bolt.Tx, o *store.Org) error {
		key, found, err := readKey(tx, keyName)
		if err != nil {
			return err
		}
		return edit(o, key, found)
	})
}

// readKey reads key name in tx; found is false if there is none.
func readKey(tx *bolt.Tx, name string) (store.Key, bool, error) {
	keys, err := bucket(tx, bucketKeyKeys)
	if err != nil {
		return store.Key{}, false, err
	}
	return getJSON[store.Key](keys, []byte(name))
}

// CarryTrust makes org trust next, the version of key keyName after prev,
// if the commit finds the carry still right (store.EditCarryTrust): the
// key and the org are read in the transaction that writes the org.
func (s *Store) CarryTrust(ctx context.Context, org, keyName, prev string, next store.TrustedKey, ev store.AuditEvent) error {
	edit, err := store.EditCarryTrust(org, keyName, prev, next)
	if err != nil {
		return err
	}
	return s.changeOrgTx(ctx, org, ev, func(tx *bolt.Tx, o *store.Org) error {
		k, found, err := readKey(tx, keyName)
		if err != nil {
			return err
		}
		return edit(o, k, found)
	})
}

// RemoveTrust marks the org's trust in fingerprint removed at at; the entry
// stays so verification can tell a removed key from an unknown one.
// ErrNotFound if the org does not actively trust the fingerprint.
//
// The grants that still carry the key are read in the same transaction,
// returned, and named in the audit detail (store.StillTrustedVia).
func (s *Store) RemoveTrust(ctx context.Context, org, fingerprint string, at time.Time, ev store.AuditEvent) ([]string, error) {
	edit, err := store.EditRemoveTrust(org, fingerprint, at)
	if err != nil {
		return nil, err
	}
	var via []string
	err = s.changeOrgEvent(ctx, org, ev, func(tx *bolt.Tx, o *store.Org, ev *store.AuditEvent) error {
		children := map[string]store.Org{}
		for _, c := range store.ActiveGrants(*o) {
			if children[c], err = loadOrg(tx, c); err != nil {
				return err
			}
		}
		via = store.StillTrustedVia(*o, children, fingerprint)
		ev.Detail = store.WithStillTrustedVia(ev.Detail, via)
		return edit(o)
	})
	return via, err
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
// change edits the org (or refuses with an error, writing nothing), the
// org's UpdatedAt becomes the event's time, and both are written in one
// transaction.
func (s *Store) changeOrg(ctx context.Context, id string, ev store.AuditEvent, change func(*store.Org) error) error {
	return s.changeOrgTx(ctx, id, ev, func(_ *bolt.Tx, o *store.Org) error { return change(o) })
}

// changeOrgTx is changeOrg for a change that also reads the transaction.
func (s *Store) changeOrgTx(ctx context.Context, id string, ev store.AuditEvent, change func(*bolt.Tx, *store.Org) error) error {
	return s.changeOrgEvent(ctx, id, ev, func(tx *bolt.Tx, o *store.Org, _ *store.AuditEvent) error { return change(tx, o) })
}

// changeOrgEvent is changeOrgTx for a change that also completes the
// audit event from what the transaction holds (a copy per attempt).
func (s *Store) changeOrgEvent(ctx context.Context, id string, ev store.AuditEvent, change func(*bolt.Tx, *store.Org, *store.AuditEvent) error) error {
	ev, err := store.PrepareEvent(ev)
	if err != nil {
		return err
	}
	return s.update(ctx, func(tx *bolt.Tx) error {
		ev := ev
		o, err := loadOrg(tx, id)
		if err != nil {
			return err
		}
		if err := change(tx, &o, &ev); err != nil {
			return err
		}
		o.UpdatedAt = ev.Time
		orgs, err := bucket(tx, bucketKeyOrgs)
		if err != nil {
			return err
		}
		if err := putJSON(orgs, []byte(id), o); err != nil {
			return err
		}
		_, err = appendAudit(tx, ev)
		return err
	})
}

// loadOrg reads an org; an unknown one is Org{ID: id}.
func loadOrg(tx *bolt.Tx, id string) (store.Org, error) {
	orgs, err := bucket(tx, bucketKeyOrgs)
	if err != nil {
		return store.Org{}, err
	}
	o, ok, err := getJSON[store.Org](orgs, []byte(id))
	if err != nil || !ok {
		return store.Org{ID: id}, err
	}
	return o, nil
}
