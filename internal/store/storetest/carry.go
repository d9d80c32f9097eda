package storetest

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/signerd/signerd/internal/errdefs"
	"github.com/signerd/signerd/internal/store"
)

// versionTrust is the trust entry for version v of key name.
func versionTrust(name string, v uint32, minutes int) store.TrustedKey {
	kv := version(name, v)
	return store.TrustedKey{Fingerprint: kv.Fingerprint, Algorithm: "ed25519", PublicKey: kv.PublicKey, KeyName: name, TrustedAt: at(minutes)}
}

// testCarryTrust: CarryTrust adds the next version's trust only when the
// commit finds the carry still right, and otherwise writes nothing and
// says ErrNotCarried.
func testCarryTrust(t *testing.T, s store.Store) {
	ctx := context.Background()
	must(t, "CreateKey k", s.CreateKey(ctx, newKey("k", 1, 2, 3), ev("key.create")))
	must(t, "CreateKey gone", s.CreateKey(ctx, newKey("gone", 1, 2), ev("key.create")))
	must(t, "RevokeKeyVersions gone", errOf(s.RevokeKeyVersions(ctx, "gone", store.ReasonSuperseded, at(1), ev("key.revoke"))))
	v1, v2, v3 := versionTrust("k", 1, 1), versionTrust("k", 2, 2), versionTrust("k", 3, 3)
	must(t, "TrustKey acme v1", s.TrustKey(ctx, "acme", v1, evAt("trust.add", 1)))
	must(t, "TrustKey removed v1", s.TrustKey(ctx, "removed", v1, evAt("trust.add", 1)))
	must(t, "RemoveTrust removed v1", errOf(s.RemoveTrust(ctx, "removed", v1.Fingerprint, at(2), evAt("trust.remove", 2))))
	must(t, "TrustKey vetoed v1", s.TrustKey(ctx, "vetoed", v1, evAt("trust.add", 1)))
	must(t, "TrustKey vetoed v2", s.TrustKey(ctx, "vetoed", v2, evAt("trust.add", 1)))
	must(t, "RemoveTrust vetoed v2", errOf(s.RemoveTrust(ctx, "vetoed", v2.Fingerprint, at(2), evAt("trust.remove", 2))))
	must(t, "TrustKey revoked", s.TrustKey(ctx, "old", versionTrust("gone", 1, 1), evAt("trust.add", 1)))

	for _, tt := range []struct {
		name       string
		org, key   string
		prev       string
		next       store.TrustedKey
		wantErr    error
		notCarried bool
	}{
		{name: "the org does not trust the earlier version", org: "nobody", key: "k", prev: v1.Fingerprint, next: v2, wantErr: errdefs.ErrFailedPrecondition, notCarried: true},
		{name: "its trust in the earlier version was removed", org: "removed", key: "k", prev: v1.Fingerprint, next: v2, wantErr: errdefs.ErrFailedPrecondition, notCarried: true},
		{name: "an operator removed the later version", org: "vetoed", key: "k", prev: v1.Fingerprint, next: v2, wantErr: errdefs.ErrFailedPrecondition, notCarried: true},
		{name: "the later version is revoked", org: "old", key: "gone", prev: versionTrust("gone", 1, 0).Fingerprint, next: versionTrust("gone", 2, 4), wantErr: errdefs.ErrFailedPrecondition, notCarried: true},
		{name: "not a version of the key", org: "acme", key: "k", prev: v1.Fingerprint, next: trusted("other", 4), wantErr: errdefs.ErrFailedPrecondition, notCarried: true},
		{name: "unknown key", org: "acme", key: "nope", prev: v1.Fingerprint, next: v2, wantErr: errdefs.ErrFailedPrecondition, notCarried: true},
		{name: "empty org", org: "", key: "k", prev: v1.Fingerprint, next: v2, wantErr: errdefs.ErrInvalidArgument},
		{name: "empty previous fingerprint", org: "acme", key: "k", prev: "", next: v2, wantErr: errdefs.ErrInvalidArgument},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var err error
			unchanged(t, s, "CarryTrust", tt.wantErr, func() error {
				err = s.CarryTrust(ctx, tt.org, tt.key, tt.prev, tt.next, ev("trust.add"))
				return err
			})
			if errors.Is(err, store.ErrNotCarried) != tt.notCarried {
				t.Fatalf("CarryTrust: %v; ErrNotCarried %v, want %v", err, !tt.notCarried, tt.notCarried)
			}
		})
	}

	n := len(audit(t, s))
	must(t, "CarryTrust v1 to v2", s.CarryTrust(ctx, "acme", "k", v1.Fingerprint, v2, evAt("trust.add", 5)))
	must(t, "CarryTrust v2 to v3", s.CarryTrust(ctx, "acme", "k", v2.Fingerprint, v3, evAt("trust.add", 6)))
	expectAudit(t, s, n, evAt("trust.add", 5), evAt("trust.add", 6))
	equal(t, "org after carrying", getOrg(t, s, "acme"), store.Org{ID: "acme", Trusted: []store.TrustedKey{v1, v2, v3}, UpdatedAt: at(6)})
	unchanged(t, s, "CarryTrust again", errdefs.ErrFailedPrecondition, func() error {
		return s.CarryTrust(ctx, "acme", "k", v1.Fingerprint, v2, ev("trust.add"))
	})
}

// testTrustKeyVersion: TrustKeyVersion trusts an active version of the
// key, and refuses, writing nothing, a revoked one, an unknown key, or a
// fingerprint that is not the key's.
func testTrustKeyVersion(t *testing.T, s store.Store) {
	ctx := context.Background()
	must(t, "CreateKey k", s.CreateKey(ctx, newKey("k", 1), ev("key.create")))
	must(t, "CreateKey gone", s.CreateKey(ctx, newKey("gone", 1), ev("key.create")))
	must(t, "RevokeKeyVersions gone", errOf(s.RevokeKeyVersions(ctx, "gone", store.ReasonSuperseded, at(1), ev("key.revoke"))))
	for _, tt := range []struct {
		name    string
		key     string
		k       store.TrustedKey
		wantErr error
		reason  errdefs.Reason
	}{
		{name: "revoked version", key: "gone", k: versionTrust("gone", 1, 2), wantErr: errdefs.ErrFailedPrecondition, reason: errdefs.ReasonKeyRevoked},
		{name: "unknown key", key: "nope", k: versionTrust("k", 1, 2), wantErr: errdefs.ErrNotFound},
		{name: "not a version of the key", key: "k", k: versionTrust("gone", 1, 2), wantErr: errdefs.ErrInvalidArgument},
		{name: "empty key name", key: "", k: versionTrust("k", 1, 2), wantErr: errdefs.ErrInvalidArgument},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var err error
			unchanged(t, s, "TrustKeyVersion", tt.wantErr, func() error {
				err = s.TrustKeyVersion(ctx, "acme", tt.key, tt.k, ev("trust.add"))
				return err
			})
			if tt.reason != "" && errdefs.ReasonOf(err) != tt.reason {
				t.Fatalf("TrustKeyVersion: %v, want reason %s", err, tt.reason)
			}
		})
	}
	n := len(audit(t, s))
	v1 := versionTrust("k", 1, 3)
	must(t, "TrustKeyVersion k v1", s.TrustKeyVersion(ctx, "acme", "k", v1, evAt("trust.add", 3)))
	expectAudit(t, s, n, evAt("trust.add", 3))
	equal(t, "org after TrustKeyVersion", getOrg(t, s, "acme"), store.Org{ID: "acme", Trusted: []store.TrustedKey{v1}, UpdatedAt: at(3)})
	unchanged(t, s, "TrustKeyVersion again", errdefs.ErrAlreadyExists, func() error {
		return s.TrustKeyVersion(ctx, "acme", "k", v1, ev("trust.add"))
	})
}

// testRemoveTrustStillVia: RemoveTrust returns, and audits, the children
// of the org's active grants that still carry the key, as its commit finds
// them; a refused removal returns them too (for its message) and writes
// nothing.
func testRemoveTrustStillVia(t *testing.T, s store.Store) {
	ctx := context.Background()
	a := trusted("a", 1)
	must(t, "TrustKey parent", s.TrustKey(ctx, "parent", a, evAt("trust.add", 1)))
	for _, c := range []string{"d", "c", "e", "revoked"} {
		must(t, "TrustKey "+c, s.TrustKey(ctx, c, a, evAt("trust.add", 1)))
		must(t, "GrantTrust "+c, s.GrantTrust(ctx, "parent", c, at(2), evAt("trust.grant", 2)))
	}
	must(t, "RemoveTrust e", errOf(s.RemoveTrust(ctx, "e", a.Fingerprint, at(3), evAt("trust.remove", 3))))
	must(t, "RevokeGrant revoked", s.RevokeGrant(ctx, "parent", "revoked", at(3), evAt("trust.revoke_grant", 3)))
	must(t, "GrantTrust nobody", s.GrantTrust(ctx, "parent", "nobody", at(3), evAt("trust.grant", 3)))

	n := len(audit(t, s))
	e := evAt("trust.remove", 4)
	e.Detail = "fingerprint=" + a.Fingerprint
	via, err := s.RemoveTrust(ctx, "parent", a.Fingerprint, at(4), e)
	must(t, "RemoveTrust parent", err)
	equal(t, "still trusted via", via, []string{"c", "d"})
	e.Detail += " still_trusted_via=c,d"
	expectAudit(t, s, n, e)

	var err2 error
	unchanged(t, s, "RemoveTrust again", errdefs.ErrNotFound, func() error {
		via, err2 = s.RemoveTrust(ctx, "parent", a.Fingerprint, at(5), ev("trust.remove"))
		return err2
	})
	equal(t, "still trusted via, refused", via, []string{"c", "d"})
}

// testRemoveTrustManyGrants: an org with more grants than fit in one
// etcd transaction's compares still has its trust removed, every grant
// that carries the key returned, and the audit detail bounded with the
// names past the bound counted.
func testRemoveTrustManyGrants(t *testing.T, s store.Store) {
	ctx := context.Background()
	a := trusted("a", 1)
	const n = 130
	must(t, "TrustKey parent", s.TrustKey(ctx, "parent", a, evAt("trust.add", 1)))
	var want []string
	for i := range n {
		c := fmt.Sprintf("child-%03d.%s.example", i, strings.Repeat("x", 40))
		want = append(want, c)
		must(t, "TrustKey "+c, s.TrustKey(ctx, c, a, evAt("trust.add", 1)))
		must(t, "GrantTrust "+c, s.GrantTrust(ctx, "parent", c, at(2), evAt("trust.grant", 2)))
	}
	e := evAt("trust.remove", 3)
	e.Detail = "fingerprint=" + a.Fingerprint
	via, err := s.RemoveTrust(ctx, "parent", a.Fingerprint, at(3), e)
	must(t, "RemoveTrust with many grants", err)
	equal(t, "still trusted via", via, want)
	recs := audit(t, s)
	d := recs[len(recs)-1].Detail
	if len(d) > store.MaxViaDetail || !strings.HasPrefix(d, e.Detail+" still_trusted_via="+want[0]+",") || !strings.HasSuffix(d, " more") {
		t.Fatalf("audit detail of %d bytes, want at most %d, naming the first grants and counting the rest: %q", len(d), store.MaxViaDetail, d)
	}
}
