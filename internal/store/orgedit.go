package store

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/signerd/signerd/internal/errdefs"
)

// The org edits every backend applies inside its read-modify-write of one
// org, so that trust semantics live in one place whichever store runs.
// Each checks its arguments (an error means bad input: nothing may be
// written) and returns the edit for Store's method of the same name; an
// edit that refuses returns an error and the backend writes nothing.

// EditTrustKey makes org trust k: a removed entry for the same fingerprint
// is re-activated in place with k's fields; ErrAlreadyExists if the org
// already actively trusts it.
func EditTrustKey(org string, k TrustedKey) (func(*Org) error, error) {
	if err := checkAll(CheckName("org", org), CheckName("fingerprint", k.Fingerprint), CheckTime("trusted-at time", k.TrustedAt)); err != nil {
		return nil, err
	}
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
	}, nil
}

// EditTrustKeyVersion returns TrustKeyVersion's edit of org, given key
// keyName as the same commit reads it (found false if there is none):
// EditTrustKey's, once k is found an active version of the key.
func EditTrustKeyVersion(org, keyName string, k TrustedKey) (func(o *Org, key Key, found bool) error, error) {
	if err := CheckName("key name", keyName); err != nil {
		return nil, err
	}
	trust, err := EditTrustKey(org, k)
	if err != nil {
		return nil, err
	}
	return func(o *Org, key Key, found bool) error {
		if !found {
			return errdefs.WithReason(errdefs.ReasonKeyNotFound, fmt.Errorf("key %q not found: %w", keyName, errdefs.ErrNotFound))
		}
		for _, v := range key.Versions {
			if v.Fingerprint != k.Fingerprint {
				continue
			}
			if v.State != KeyActive {
				return errdefs.WithReason(errdefs.ReasonKeyRevoked, fmt.Errorf("key %q version %d is revoked (%s): %w",
					keyName, v.Version, v.RevocationReason, errdefs.ErrFailedPrecondition))
			}
			return trust(o)
		}
		return Invalid("%s is not a version of key %q", k.Fingerprint, keyName)
	}, nil
}

// ErrNotCarried is CarryTrust's refusal: the commit found that a trust
// decision taken since the caller's read makes the carry wrong.
var ErrNotCarried = fmt.Errorf("trust not carried: %w", errdefs.ErrFailedPrecondition)

// EditCarryTrust returns CarryTrust's edit of org, given key keyName as
// the same commit reads it (found false if there is none). It refuses
// with ErrNotCarried, so that a carry decided on an older read never
// overrides what was decided since: an org whose trust in prev was removed
// (or never was), an org with any entry for next (one that trusts it
// already carries it on itself; a removed one was an operator's
// decision), and a next that is not an active version of the key (revoked
// since, or not the key's).
func EditCarryTrust(org, keyName, prev string, next TrustedKey) (func(o *Org, k Key, found bool) error, error) {
	if err := checkAll(CheckName("org", org), CheckName("key name", keyName), CheckName("fingerprint", prev),
		CheckName("fingerprint", next.Fingerprint), CheckTime("trusted-at time", next.TrustedAt)); err != nil {
		return nil, err
	}
	next.RemovedAt = nil
	return func(o *Org, k Key, found bool) error {
		active := false
		for _, v := range k.Versions {
			if v.Fingerprint == next.Fingerprint {
				active = found && v.State == KeyActive
			}
		}
		switch {
		case !active:
			return fmt.Errorf("key %q has no active version %s: %w", keyName, next.Fingerprint, ErrNotCarried)
		case !o.TrustsActively(prev):
			return fmt.Errorf("org %q does not trust %s: %w", org, prev, ErrNotCarried)
		case o.Entry(next.Fingerprint) != nil:
			return fmt.Errorf("org %q already has an entry for %s: %w", org, next.Fingerprint, ErrNotCarried)
		}
		o.Trusted = append(o.Trusted, next)
		return nil
	}, nil
}

// EditRemoveTrust marks org's trust in fingerprint removed at at; the entry
// stays so verification can tell a removed key from an unknown one.
// ErrNotFound if the org does not actively trust the fingerprint.
func EditRemoveTrust(org, fingerprint string, at time.Time) (func(*Org) error, error) {
	if err := checkAll(CheckName("org", org), CheckName("fingerprint", fingerprint), CheckTime("removal time", at)); err != nil {
		return nil, err
	}
	return func(o *Org) error {
		for i, t := range o.Trusted {
			if t.Fingerprint == fingerprint && t.RemovedAt == nil {
				o.Trusted[i].RemovedAt = &at
				return nil
			}
		}
		return fmt.Errorf("org %q does not trust %s: %w", org, fingerprint, errdefs.ErrNotFound)
	}, nil
}

// StillTrustedVia returns, sorted, the children of parent's active grants
// that actively trust fingerprint directly: through each, parent accepts
// the key whatever its own entry says (one level, as trust views resolve).
// children holds those orgs by ID; one absent trusts nothing.
func StillTrustedVia(parent Org, children map[string]Org, fingerprint string) []string {
	var via []string
	for _, g := range parent.Grants {
		if g.RevokedAt == nil && children[g.Child].TrustsActively(fingerprint) {
			via = append(via, g.Child)
		}
	}
	slices.Sort(via)
	return slices.Compact(via)
}

// ActiveGrants returns the children of o's active grants.
func ActiveGrants(o Org) []string {
	var out []string
	for _, g := range o.Grants {
		if g.RevokedAt == nil {
			out = append(out, g.Child)
		}
	}
	return out
}

// MaxViaDetail bounds a trust removal's audit detail with the grants
// named in it (as the service bounds every free-text audit field): an org
// may have any number of grants.
const MaxViaDetail = 1024

// WithStillTrustedVia is a trust removal's audit detail given the grants
// that still carry the key: detail, and " still_trusted_via=C,D" if any;
// the names that would take it past MaxViaDetail are counted instead
// ("C,D,+3 more").
func WithStillTrustedVia(detail string, via []string) string {
	if len(via) == 0 {
		return detail
	}
	out := strings.TrimPrefix(detail+" still_trusted_via=", " ")
	for i, c := range via {
		next := out + c
		if i > 0 {
			next = out + "," + c
		}
		limit := MaxViaDetail
		if after := len(via) - i - 1; after > 0 {
			limit -= len(fmt.Sprintf(",+%d more", after))
		}
		if len(next) > limit && i > 0 {
			return out + fmt.Sprintf(",+%d more", len(via)-i)
		}
		out = next
	}
	return out
}

// EditGrantTrust records grant(parent, child) at at, re-activating a
// revoked grant in place; ErrAlreadyExists if the grant is active,
// ErrInvalidArgument if parent == child.
func EditGrantTrust(parent, child string, at time.Time) (func(*Org) error, error) {
	if err := checkAll(CheckName("parent org", parent), CheckName("child org", child), CheckTime("grant time", at)); err != nil {
		return nil, err
	}
	if parent == child {
		return nil, Invalid("org %q cannot grant trust to itself", parent)
	}
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
	}, nil
}

// EditRevokeGrant ends grant(parent, child) at at; ErrNotFound if no such
// grant is active.
func EditRevokeGrant(parent, child string, at time.Time) (func(*Org) error, error) {
	if err := checkAll(CheckName("parent org", parent), CheckName("child org", child), CheckTime("revocation time", at)); err != nil {
		return nil, err
	}
	return func(o *Org) error {
		for i, g := range o.Grants {
			if g.Child == child && g.RevokedAt == nil {
				o.Grants[i].RevokedAt = &at
				return nil
			}
		}
		return fmt.Errorf("org %q grants no trust to %q: %w", parent, child, errdefs.ErrNotFound)
	}, nil
}

// EditRequireSignatures sets the org's policy (creating the org if needed).
func EditRequireSignatures(org string, require bool) (func(*Org) error, error) {
	if err := CheckName("org", org); err != nil {
		return nil, err
	}
	return func(o *Org) error {
		o.RequireSignatures = require
		return nil
	}, nil
}

// checkAll returns the first error, in argument order.
func checkAll(errs ...error) error {
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}
