package store

import (
	"fmt"
	"time"

	"github.com/signerd/signerd/internal/errdefs"
)

// The org edits every backend applies inside its read-modify-write of one
// org, so that trust semantics live in one place whichever store runs.
// Each returns the edit for Store's method of the same name; an edit that
// refuses returns an error and the backend writes nothing.

// EditTrustKey makes org trust k: a removed entry for the same fingerprint
// is re-activated in place with k's fields; ErrAlreadyExists if the org
// already actively trusts it.
func EditTrustKey(org string, k TrustedKey) func(*Org) error {
	k.RemovedAt = nil
	return func(o *Org) error {
		for i, t := range o.Trusted {
			if t.Fingerprint != k.Fingerprint {
				continue
			}
			if t.RemovedAt == nil {
				return fmt.Errorf("org %q already trusts %s: %w", org, k.Fingerprint, errdefs.ErrAlreadyExists)
			}
			o.Trusted[i] = k
			return nil
		}
		o.Trusted = append(o.Trusted, k)
		return nil
	}
}

// EditRemoveTrust marks org's trust in fingerprint removed at at; the entry
// stays so verification can tell a removed key from an unknown one.
// ErrNotFound if the org does not actively trust the fingerprint.
func EditRemoveTrust(org, fingerprint string, at time.Time) func(*Org) error {
	return func(o *Org) error {
		for i, t := range o.Trusted {
			if t.Fingerprint == fingerprint && t.RemovedAt == nil {
				o.Trusted[i].RemovedAt = &at
				return nil
			}
		}
		return fmt.Errorf("org %q does not trust %s: %w", org, fingerprint, errdefs.ErrNotFound)
	}
}

// EditGrantTrust records grant(parent, child) at at, re-activating a
// revoked grant in place; ErrAlreadyExists if the grant is active.
func EditGrantTrust(parent, child string, at time.Time) func(*Org) error {
	return func(o *Org) error {
		for i, g := range o.Grants {
			if g.Child != child {
				continue
			}
			if g.RevokedAt == nil {
				return fmt.Errorf("org %q already grants trust to %q: %w", parent, child, errdefs.ErrAlreadyExists)
			}
			o.Grants[i] = Grant{Child: child, GrantedAt: at}
			return nil
		}
		o.Grants = append(o.Grants, Grant{Child: child, GrantedAt: at})
		return nil
	}
}

// EditRevokeGrant ends grant(parent, child) at at; ErrNotFound if no such
// grant is active.
func EditRevokeGrant(parent, child string, at time.Time) func(*Org) error {
	return func(o *Org) error {
		for i, g := range o.Grants {
			if g.Child == child && g.RevokedAt == nil {
				o.Grants[i].RevokedAt = &at
				return nil
			}
		}
		return fmt.Errorf("org %q grants no trust to %q: %w", parent, child, errdefs.ErrNotFound)
	}
}

// EditRequireSignatures sets the org's policy.
func EditRequireSignatures(require bool) func(*Org) error {
	return func(o *Org) error {
		o.RequireSignatures = require
		return nil
	}
}
