package service

import (
	"context"
	"crypto"
	"crypto/x509"
	"errors"
	"fmt"
	"sort"
	"strings"

	"github.com/signerd/signerd/internal/errdefs"
	"github.com/signerd/signerd/internal/store"
)

// TrustEntry is one key an org trusts, directly or through a grant.
type TrustEntry struct {
	store.TrustedKey
	// ViaOrg is empty for direct trust, else the child org it comes from.
	ViaOrg string
	// pub is PublicKey parsed once, when the view is resolved.
	pub crypto.PublicKey
}

// TrustView is what an org trusts.
type TrustView struct {
	Org string
	// Configured is false for an org nobody configured: Verify and
	// ListTrusted refuse it (UNKNOWN_ORG) and it is never cached.
	Configured        bool
	RequireSignatures bool
	Keys              []TrustEntry
	GrantedOrgs       []string
	// removed holds fingerprints whose trust was removed (directly, or by
	// a granted child) and are not trusted otherwise: signatures by them
	// fail with KEY_REVOKED rather than UNTRUSTED_SIGNER.
	removed map[string]store.TrustedKey
	byFP    map[string]int
}

// lookup returns the active trust entry for a fingerprint.
func (v TrustView) lookup(fp string) (TrustEntry, bool) {
	i, ok := v.byFP[fp]
	if !ok {
		return TrustEntry{}, false
	}
	return v.Keys[i], true
}

// trustView resolves an org's trust: its direct active keys first, then the
// direct active keys of each child it has an active grant to (one level, not
// transitive; the first occurrence of a fingerprint wins), as Cloacina's
// list_trusted_keys does.
func (s *Service) trustView(ctx context.Context, orgID string) (TrustView, error) {
	org, err := s.store.GetOrg(ctx, orgID)
	if err != nil {
		return TrustView{}, err
	}
	v := TrustView{Org: orgID, Configured: org.Configured(), RequireSignatures: org.RequireSignatures, removed: map[string]store.TrustedKey{}, byFP: map[string]int{}}
	add := func(tk store.TrustedKey, via string) {
		if tk.RemovedAt != nil {
			if _, ok := v.byFP[tk.Fingerprint]; !ok {
				v.removed[tk.Fingerprint] = tk
			}
			return
		}
		if _, ok := v.byFP[tk.Fingerprint]; ok {
			return
		}
		delete(v.removed, tk.Fingerprint)
		pub, _ := ParsePublicKeyDER(tk.PublicKey) // nil for a corrupt entry: it then verifies nothing
		v.byFP[tk.Fingerprint] = len(v.Keys)
		v.Keys = append(v.Keys, TrustEntry{TrustedKey: tk, ViaOrg: via, pub: pub})
	}
	for _, tk := range org.Trusted {
		add(tk, "")
	}
	for _, g := range org.Grants {
		if g.RevokedAt != nil {
			continue
		}
		v.GrantedOrgs = append(v.GrantedOrgs, g.Child)
		child, err := s.store.GetOrg(ctx, g.Child)
		if err != nil {
			return TrustView{}, err
		}
		for _, tk := range child.Trusted {
			add(tk, g.Child)
		}
	}
	sort.Strings(v.GrantedOrgs)
	return v, nil
}

// ListTrusted returns the keys an org trusts, directly and through grants.
func (s *Service) ListTrusted(ctx context.Context, org string) (TrustView, error) {
	if err := ValidateOrg(org); err != nil {
		return TrustView{}, err
	}
	v, err := s.cachedTrustView(ctx, org)
	if err == nil && !v.Configured {
		return TrustView{}, orgNotConfigured(org)
	}
	return v, err
}

// unknownOrg is the refusal of a verification for an org nobody
// configured.
func unknownOrg(org string) error {
	return &errdefs.VerificationError{
		Reason:  errdefs.ReasonUnknownOrg,
		Message: fmt.Sprintf("org %s is not configured: no trust, grant or policy was ever set for it", errdefs.Quote(org)),
	}
}

// AddTrustInput names the org and the key: a signerd key by name (its
// current version) or an SPKI PEM public key.
type AddTrustInput struct {
	Org          string
	KeyName      string
	PublicKeyPEM []byte
	DisplayName  string
}

// AddTrust makes an org trust a key.
func (s *Service) AddTrust(ctx context.Context, in AddTrustInput) (store.TrustedKey, error) {
	if err := ValidateOrg(in.Org); err != nil {
		return store.TrustedKey{}, err
	}
	var tk store.TrustedKey
	// The signerd key and version trusted when it is that key's current
	// one: trust in it carries to the versions rotated since (carryTrust).
	var carryKey string
	var version uint32
	switch {
	case in.KeyName != "" && len(in.PublicKeyPEM) != 0:
		return tk, fmt.Errorf("give a key name or a public key, not both: %w", errdefs.ErrInvalidArgument)
	case in.KeyName != "":
		key, err := s.GetKey(ctx, in.KeyName)
		if err != nil {
			return tk, err
		}
		ver, ok := key.Current()
		if !ok {
			return tk, errdefs.WithReason(errdefs.ReasonKeyRevoked, fmt.Errorf("key %q is revoked: %w", in.KeyName, errdefs.ErrFailedPrecondition))
		}
		tk = store.TrustedKey{Fingerprint: ver.Fingerprint, Algorithm: key.Algorithm, PublicKey: ver.PublicKey, KeyName: key.Name}
		carryKey, version = key.Name, ver.Version
	case len(in.PublicKeyPEM) != 0:
		pub, der, err := ParsePublicKeyPEM(in.PublicKeyPEM)
		if err != nil {
			return tk, err
		}
		alg, _ := AlgorithmOf(pub)
		fp, err := Fingerprint(pub)
		if err != nil {
			return tk, err
		}
		// Normalise the DER so equal keys are stored identically.
		if der, err = x509.MarshalPKIXPublicKey(pub); err != nil {
			return tk, fmt.Errorf("marshal public key: %w", err)
		}
		name := in.DisplayName
		if k, v, err := s.store.FindKeyVersion(ctx, fp); err == nil {
			if name == "" {
				name = k.Name
			}
			// One of signerd's keys, given by its public key: as by
			// name if it is the current version (an older one is
			// trusted alone, as asked).
			if cur, ok := k.Current(); ok && cur.Version == v.Version {
				carryKey, version = k.Name, v.Version
			}
		}
		tk = store.TrustedKey{Fingerprint: fp, Algorithm: string(alg), PublicKey: der, KeyName: name}
	default:
		return tk, fmt.Errorf("a key name or a public key is required: %w", errdefs.ErrInvalidArgument)
	}
	tk.TrustedAt = s.now()
	ev := s.event(ctx, "trust.add")
	ev.Org, ev.Key, ev.Detail = in.Org, tk.KeyName, "fingerprint="+tk.Fingerprint
	trust := s.store.TrustKey
	if in.KeyName != "" {
		// By name: the version must still be active when the trust
		// commits, or a `key revoke` racing this call would be
		// followed by trust in the key it revoked.
		trust = func(ctx context.Context, org string, tk store.TrustedKey, ev store.AuditEvent) error {
			return s.store.TrustKeyVersion(ctx, org, in.KeyName, tk, ev)
		}
	}
	if err := trust(ctx, in.Org, tk, ev); err != nil {
		// ErrAlreadyExists: the store's error says it already (org,
		// fingerprint).
		return tk, err
	}
	if carryKey != "" {
		// A rotation that committed since the key was read above
		// may not have seen this trust (carryTrust).
		ctx, cancel := carryContext(ctx)
		defer cancel()
		if _, err := s.carryTrust(ctx, in.Org, carryKey, version); err != nil {
			return tk, fmt.Errorf("org %q trusts key %q version %d, but its trust did not carry over to the versions rotated since: %w", in.Org, carryKey, version, err)
		}
	}
	return tk, nil
}

// RemoveTrust stops an org trusting a fingerprint directly. Signatures by
// that key then fail verification for the org with KEY_REVOKED, unless the
// org still accepts the key through a grant: a trust view is the union of
// the org's own keys and its granted children's (Cloacina's semantics, kept),
// so removing the direct entry cannot take away what a grant gives. The
// answer names those grants' children (sorted; also in the audit record) so
// that nobody is told a key is gone while it still verifies.
func (s *Service) RemoveTrust(ctx context.Context, org, fingerprint string) (stillVia []string, err error) {
	if err := ValidateOrg(org); err != nil {
		return nil, err
	}
	if fingerprint == "" {
		return nil, fmt.Errorf("fingerprint is required: %w", errdefs.ErrInvalidArgument)
	}
	if err := s.requireConfigured(ctx, org); err != nil {
		return nil, err
	}
	ev := s.event(ctx, "trust.remove")
	ev.Org, ev.Detail = org, "fingerprint="+fingerprint
	// The store finds the grants that still carry the key in the commit
	// (a grant committing meanwhile is named) and audits them.
	via, err := s.store.RemoveTrust(ctx, org, fingerprint, s.now(), ev)
	if err != nil {
		if errors.Is(err, errdefs.ErrNotFound) {
			if len(via) > 0 {
				return nil, kindOf(err, fmt.Errorf("org %q does not trust key %s directly; it accepts it through its %s (signctl trust revoke-grant ends a grant): %w",
					org, fingerprint, grantsPhrase(via), errdefs.ErrNotFound))
			}
			return nil, kindOf(err, fmt.Errorf("org %q does not trust key %s (signctl trust list --org %s shows its keys): %w",
				org, fingerprint, org, errdefs.ErrNotFound))
		}
		return nil, err
	}
	return via, nil
}

// kindOf returns msg carrying the reason of the store error it replaces,
// if that error had one: msg already says everything the store's sentence
// said, so only the error kind (wrapped in msg) and the reason survive.
func kindOf(storeErr, msg error) error {
	if r := errdefs.ReasonOf(storeErr); r != "" {
		return errdefs.WithReason(r, msg)
	}
	return msg
}

// requireConfigured refuses an edit of an org nobody configured with
// NOT_FOUND and reason UNKNOWN_ORG, as ListTrusted does, rather than
// letting the edit report that the org lacks one particular key or grant.
func (s *Service) requireConfigured(ctx context.Context, org string) error {
	o, err := s.store.GetOrg(ctx, org)
	if err != nil {
		return err
	}
	if !o.Configured() {
		return orgNotConfigured(org)
	}
	return nil
}

// orgNotConfigured is the NOT_FOUND error, with reason UNKNOWN_ORG, for a
// read or an edit of an org nobody configured.
func orgNotConfigured(org string) error {
	return errdefs.WithReason(errdefs.ReasonUnknownOrg, fmt.Errorf(
		"org %s is not configured: no trust, grant or policy was ever set for it: %w", errdefs.Quote(org), errdefs.ErrNotFound))
}

// grantsPhrase names grants for messages: "grant of org C" or "grants of
// orgs C, D".
func grantsPhrase(children []string) string {
	if len(children) == 1 {
		return "grant of org " + children[0]
	}
	return "grants of orgs " + strings.Join(children, ", ")
}

// GrantTrust makes parent trust what child trusts directly.
func (s *Service) GrantTrust(ctx context.Context, parent, child string) error {
	if err := ValidateOrg(parent); err != nil {
		return err
	}
	if err := ValidateOrg(child); err != nil {
		return err
	}
	if parent == child {
		return fmt.Errorf("an org cannot grant trust to itself: %w", errdefs.ErrInvalidArgument)
	}
	ev := s.event(ctx, "trust.grant")
	ev.Org, ev.Detail = parent, "child="+child
	return s.store.GrantTrust(ctx, parent, child, s.now(), ev)
}

// RevokeGrant ends grant(parent, child).
func (s *Service) RevokeGrant(ctx context.Context, parent, child string) error {
	if err := ValidateOrg(parent); err != nil {
		return err
	}
	if err := ValidateOrg(child); err != nil {
		return err
	}
	if err := s.requireConfigured(ctx, parent); err != nil {
		return err
	}
	ev := s.event(ctx, "trust.revoke_grant")
	ev.Org, ev.Detail = parent, "child="+child
	return s.store.RevokeGrant(ctx, parent, child, s.now(), ev)
}

// SetRequireSignatures sets an org's policy.
func (s *Service) SetRequireSignatures(ctx context.Context, org string, require bool) error {
	if err := ValidateOrg(org); err != nil {
		return err
	}
	ev := s.event(ctx, "policy.set")
	ev.Org, ev.Detail = org, fmt.Sprintf("require_signatures=%t", require)
	return s.store.SetRequireSignatures(ctx, org, require, ev)
}

// RequireSignatures returns an org's policy. An org nobody configured is
// UNKNOWN_ORG, as for ListTrusted and Verify: its "false" would read as a
// policy that admits unsigned code.
func (s *Service) RequireSignatures(ctx context.Context, org string) (bool, error) {
	if err := ValidateOrg(org); err != nil {
		return false, err
	}
	o, err := s.store.GetOrg(ctx, org)
	if err != nil {
		return false, err
	}
	if !o.Configured() {
		return false, orgNotConfigured(org)
	}
	return o.RequireSignatures, nil
}
