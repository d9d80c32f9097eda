package storetest

import (
	"context"
	"testing"
	"time"

	"github.com/signerd/signerd/internal/errdefs"
	"github.com/signerd/signerd/internal/store"
)

func trusted(name string, minutes int) store.TrustedKey {
	v := version(name, 1)
	return store.TrustedKey{
		Fingerprint: v.Fingerprint,
		Algorithm:   "ed25519",
		PublicKey:   v.PublicKey,
		KeyName:     name,
		TrustedAt:   at(minutes),
	}
}

func evAt(op string, minutes int) store.AuditEvent {
	e := ev(op)
	e.Time = at(minutes)
	return e
}

func getOrg(t *testing.T, s store.Store, id string) store.Org {
	t.Helper()
	o, err := s.GetOrg(context.Background(), id)
	must(t, "GetOrg "+id, err)
	return o
}

func testGetOrgUnknown(t *testing.T, s store.Store) {
	ctx := context.Background()
	equal(t, "GetOrg unknown", getOrg(t, s, "nobody"), store.Org{ID: "nobody"})
	_, err := s.GetOrg(ctx, "")
	checkErr(t, "GetOrg empty", err, errdefs.ErrInvalidArgument)
	orgs, err := s.ListOrgs(ctx)
	must(t, "ListOrgs", err)
	if len(orgs) != 0 {
		t.Fatalf("ListOrgs after only reads = %d orgs, want 0 (reading must not create)", len(orgs))
	}
}

// testOrgConfigured: an org exists once a trust, a grant (for the parent)
// or a policy was set for it, and only then; reads and failed writes do
// not create it, and removing its last trust does not forget it.
func testOrgConfigured(t *testing.T, s store.Store) {
	ctx := context.Background()
	a := trusted("a", 1)
	must(t, "TrustKey", s.TrustKey(ctx, "by-trust", a, evAt("trust.add", 1)))
	must(t, "RemoveTrust", errOf(s.RemoveTrust(ctx, "by-trust", a.Fingerprint, at(2), evAt("trust.remove", 2))))
	must(t, "GrantTrust", s.GrantTrust(ctx, "by-grant", "grant-child", at(3), evAt("trust.grant", 3)))
	must(t, "SetRequireSignatures", s.SetRequireSignatures(ctx, "by-policy", false, evAt("policy.set", 4)))
	if err := s.RevokeGrant(ctx, "refused", "x", at(5), evAt("trust.revoke_grant", 5)); err == nil {
		t.Fatal("RevokeGrant of a grant that does not exist succeeded")
	}
	for _, tt := range []struct {
		org  string
		want bool
	}{
		{"by-trust", true}, {"by-grant", true}, {"by-policy", true},
		{"grant-child", false}, {"refused", false}, {"never", false},
	} {
		if got := getOrg(t, s, tt.org).Configured(); got != tt.want {
			t.Errorf("org %q: Configured() = %t, want %t", tt.org, got, tt.want)
		}
	}
}

func testTrust(t *testing.T, s store.Store) {
	ctx := context.Background()
	a, b := trusted("a", 1), trusted("b", 2)

	must(t, "TrustKey a", s.TrustKey(ctx, "acme", a, evAt("trust.add", 1)))
	must(t, "TrustKey b", s.TrustKey(ctx, "acme", b, evAt("trust.add", 2)))
	expectAudit(t, s, 0, evAt("trust.add", 1), evAt("trust.add", 2))
	equal(t, "org after TrustKey", getOrg(t, s, "acme"), store.Org{ID: "acme", Trusted: []store.TrustedKey{a, b}, UpdatedAt: at(2)})

	for _, tt := range []struct {
		name    string
		org     string
		k       store.TrustedKey
		wantErr error
	}{
		{name: "already trusted", org: "acme", k: a, wantErr: errdefs.ErrAlreadyExists},
		{name: "empty org", org: "", k: trusted("c", 3), wantErr: errdefs.ErrInvalidArgument},
		{name: "empty fingerprint", org: "acme", k: store.TrustedKey{TrustedAt: at(3)}, wantErr: errdefs.ErrInvalidArgument},
		{name: "no time", org: "acme", k: func() store.TrustedKey { k := trusted("c", 3); k.TrustedAt = time.Time{}; return k }(), wantErr: errdefs.ErrInvalidArgument},
	} {
		t.Run("TrustKey "+tt.name, func(t *testing.T) {
			unchanged(t, s, "TrustKey", tt.wantErr, func() error { return s.TrustKey(ctx, tt.org, tt.k, ev("trust.add")) })
		})
	}

	removed := at(5)
	n := len(audit(t, s))
	must(t, "RemoveTrust a", errOf(s.RemoveTrust(ctx, "acme", a.Fingerprint, removed, evAt("trust.remove", 5))))
	expectAudit(t, s, n, evAt("trust.remove", 5))
	aRemoved := a
	aRemoved.RemovedAt = &removed
	equal(t, "org after RemoveTrust", getOrg(t, s, "acme"), store.Org{ID: "acme", Trusted: []store.TrustedKey{aRemoved, b}, UpdatedAt: at(5)})

	for _, tt := range []struct {
		name    string
		org, fp string
		when    time.Time
		wantErr error
	}{
		{name: "already removed", org: "acme", fp: a.Fingerprint, when: at(6), wantErr: errdefs.ErrNotFound},
		{name: "never trusted", org: "acme", fp: trusted("c", 0).Fingerprint, when: at(6), wantErr: errdefs.ErrNotFound},
		{name: "unknown org", org: "nobody", fp: b.Fingerprint, when: at(6), wantErr: errdefs.ErrNotFound},
		{name: "empty org", org: "", fp: b.Fingerprint, when: at(6), wantErr: errdefs.ErrInvalidArgument},
		{name: "empty fingerprint", org: "acme", fp: "", when: at(6), wantErr: errdefs.ErrInvalidArgument},
		{name: "no time", org: "acme", fp: b.Fingerprint, wantErr: errdefs.ErrInvalidArgument},
	} {
		t.Run("RemoveTrust "+tt.name, func(t *testing.T) {
			unchanged(t, s, "RemoveTrust", tt.wantErr, func() error {
				return errOf(s.RemoveTrust(ctx, tt.org, tt.fp, tt.when, ev("trust.remove")))
			})
		})
	}

	// Trusting a removed key again re-activates the same entry.
	again := a
	again.TrustedAt = at(7)
	must(t, "TrustKey a again", s.TrustKey(ctx, "acme", again, evAt("trust.add", 7)))
	equal(t, "org after re-trust", getOrg(t, s, "acme"), store.Org{ID: "acme", Trusted: []store.TrustedKey{again, b}, UpdatedAt: at(7)})

	// An input RemovedAt is not a way to add a removed entry.
	c := trusted("c", 8)
	c.RemovedAt = &removed
	must(t, "TrustKey with RemovedAt", s.TrustKey(ctx, "acme", c, evAt("trust.add", 8)))
	if o := getOrg(t, s, "acme"); o.Trusted[2].RemovedAt != nil {
		t.Fatalf("TrustKey stored RemovedAt %v", o.Trusted[2].RemovedAt)
	}
	audit(t, s)
}

func testGrants(t *testing.T, s store.Store) {
	ctx := context.Background()
	must(t, "GrantTrust a→b", s.GrantTrust(ctx, "a", "b", at(1), evAt("trust.grant", 1)))
	must(t, "GrantTrust a→c", s.GrantTrust(ctx, "a", "c", at(2), evAt("trust.grant", 2)))
	expectAudit(t, s, 0, evAt("trust.grant", 1), evAt("trust.grant", 2))
	equal(t, "org after grants", getOrg(t, s, "a"), store.Org{ID: "a", UpdatedAt: at(2), Grants: []store.Grant{
		{Child: "b", GrantedAt: at(1)}, {Child: "c", GrantedAt: at(2)},
	}})
	// A grant is one level and one way: the child is not changed.
	equal(t, "child after grant", getOrg(t, s, "b"), store.Org{ID: "b"})

	for _, tt := range []struct {
		name          string
		parent, child string
		when          time.Time
		wantErr       error
	}{
		{name: "to itself", parent: "a", child: "a", when: at(3), wantErr: errdefs.ErrInvalidArgument},
		{name: "already granted", parent: "a", child: "b", when: at(3), wantErr: errdefs.ErrAlreadyExists},
		{name: "empty parent", parent: "", child: "b", when: at(3), wantErr: errdefs.ErrInvalidArgument},
		{name: "empty child", parent: "a", child: "", when: at(3), wantErr: errdefs.ErrInvalidArgument},
		{name: "no time", parent: "x", child: "y", wantErr: errdefs.ErrInvalidArgument},
	} {
		t.Run("GrantTrust "+tt.name, func(t *testing.T) {
			unchanged(t, s, "GrantTrust", tt.wantErr, func() error {
				return s.GrantTrust(ctx, tt.parent, tt.child, tt.when, ev("trust.grant"))
			})
		})
	}

	revoked := at(4)
	must(t, "RevokeGrant a→b", s.RevokeGrant(ctx, "a", "b", revoked, evAt("trust.revoke_grant", 4)))
	equal(t, "org after RevokeGrant", getOrg(t, s, "a"), store.Org{ID: "a", UpdatedAt: at(4), Grants: []store.Grant{
		{Child: "b", GrantedAt: at(1), RevokedAt: &revoked}, {Child: "c", GrantedAt: at(2)},
	}})

	for _, tt := range []struct {
		name          string
		parent, child string
		when          time.Time
		wantErr       error
	}{
		{name: "already revoked", parent: "a", child: "b", when: at(5), wantErr: errdefs.ErrNotFound},
		{name: "never granted", parent: "a", child: "d", when: at(5), wantErr: errdefs.ErrNotFound},
		{name: "reverse direction", parent: "c", child: "a", when: at(5), wantErr: errdefs.ErrNotFound},
		{name: "empty parent", parent: "", child: "c", when: at(5), wantErr: errdefs.ErrInvalidArgument},
		{name: "no time", parent: "a", child: "c", wantErr: errdefs.ErrInvalidArgument},
	} {
		t.Run("RevokeGrant "+tt.name, func(t *testing.T) {
			unchanged(t, s, "RevokeGrant", tt.wantErr, func() error {
				return s.RevokeGrant(ctx, tt.parent, tt.child, tt.when, ev("trust.revoke_grant"))
			})
		})
	}

	// Granting again re-activates the revoked grant in place.
	must(t, "GrantTrust a→b again", s.GrantTrust(ctx, "a", "b", at(6), evAt("trust.grant", 6)))
	equal(t, "org after re-grant", getOrg(t, s, "a"), store.Org{ID: "a", UpdatedAt: at(6), Grants: []store.Grant{
		{Child: "b", GrantedAt: at(6)}, {Child: "c", GrantedAt: at(2)},
	}})
	audit(t, s)
}

func testRequireSignatures(t *testing.T, s store.Store) {
	ctx := context.Background()
	must(t, "SetRequireSignatures true", s.SetRequireSignatures(ctx, "acme", true, evAt("policy.set", 1)))
	equal(t, "org created by policy", getOrg(t, s, "acme"), store.Org{ID: "acme", RequireSignatures: true, UpdatedAt: at(1)})
	must(t, "SetRequireSignatures false", s.SetRequireSignatures(ctx, "acme", false, evAt("policy.set", 2)))
	equal(t, "org after policy off", getOrg(t, s, "acme"), store.Org{ID: "acme", UpdatedAt: at(2)})
	expectAudit(t, s, 0, evAt("policy.set", 1), evAt("policy.set", 2))
	unchanged(t, s, "SetRequireSignatures empty org", errdefs.ErrInvalidArgument, func() error {
		return s.SetRequireSignatures(ctx, "", true, ev("policy.set"))
	})
	unchanged(t, s, "SetRequireSignatures empty operation", errdefs.ErrInvalidArgument, func() error {
		return s.SetRequireSignatures(ctx, "acme", true, store.AuditEvent{})
	})
}

func testListOrgs(t *testing.T, s store.Store) {
	ctx := context.Background()
	must(t, "policy z", s.SetRequireSignatures(ctx, "z", true, ev("policy.set")))
	must(t, "trust m", s.TrustKey(ctx, "m", trusted("k", 0), ev("trust.add")))
	must(t, "grant a→z", s.GrantTrust(ctx, "a", "z", at(0), ev("trust.grant")))
	orgs, err := s.ListOrgs(ctx)
	must(t, "ListOrgs", err)
	var ids []string
	for _, o := range orgs {
		ids = append(ids, o.ID)
	}
	equal(t, "ListOrgs order", ids, []string{"a", "m", "z"})
	for _, o := range orgs {
		equal(t, "ListOrgs entry "+o.ID, o, getOrg(t, s, o.ID))
	}
}
