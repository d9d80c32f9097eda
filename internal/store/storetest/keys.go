package storetest

import (
	"context"
	"errors"
	"reflect"
	"testing"
	"time"

	"github.com/signerd/signerd/internal/errdefs"
	"github.com/signerd/signerd/internal/store"
)

func testCreateKey(t *testing.T, s store.Store) {
	ctx := context.Background()
	alpha := newKey("alpha")
	must(t, "CreateKey alpha", s.CreateKey(ctx, alpha, ev("key.create")))
	expectAudit(t, s, 0, ev("key.create"))

	withVersion := func(name string, edit func(*store.KeyVersion)) store.Key {
		k := newKey(name)
		edit(&k.Versions[0])
		return k
	}
	tests := []struct {
		name    string
		key     store.Key
		ev      store.AuditEvent
		wantErr error
	}{
		{name: "two versions", key: newKey("beta", 1, 2)},
		{
			// Fresh fingerprint and CKA_ID, so only the name collides.
			name: "name taken", wantErr: errdefs.ErrAlreadyExists,
			key: store.Key{Name: "alpha", Algorithm: "ed25519", Versions: []store.KeyVersion{version("alpha-2", 1)}},
		},
		{
			name: "fingerprint of another key", wantErr: errdefs.ErrAlreadyExists,
			key: withVersion("gamma", func(v *store.KeyVersion) { v.Fingerprint = alpha.Versions[0].Fingerprint }),
		},
		{
			name: "CKA_ID of another key", wantErr: errdefs.ErrAlreadyExists,
			key: withVersion("gamma", func(v *store.KeyVersion) { v.CKAID = alpha.Versions[0].CKAID }),
		},
		{name: "empty name", key: newKey(""), wantErr: errdefs.ErrInvalidArgument},
		{name: "no versions", key: store.Key{Name: "gamma", Algorithm: "ed25519"}, wantErr: errdefs.ErrInvalidArgument},
		{name: "versions not from 1", key: newKey("gamma", 2), wantErr: errdefs.ErrInvalidArgument},
		{name: "versions with a gap", key: newKey("gamma", 1, 3), wantErr: errdefs.ErrInvalidArgument},
		{
			name: "empty fingerprint", wantErr: errdefs.ErrInvalidArgument,
			key: withVersion("gamma", func(v *store.KeyVersion) { v.Fingerprint = "" }),
		},
		{
			name: "empty CKA_ID", wantErr: errdefs.ErrInvalidArgument,
			key: withVersion("gamma", func(v *store.KeyVersion) { v.CKAID = nil }),
		},
		{
			name: "unknown state", wantErr: errdefs.ErrInvalidArgument,
			key: withVersion("gamma", func(v *store.KeyVersion) { v.State = "dormant" }),
		},
		{
			name: "versions share a fingerprint", wantErr: errdefs.ErrInvalidArgument,
			key: func() store.Key {
				k := newKey("gamma", 1, 2)
				k.Versions[1].Fingerprint = k.Versions[0].Fingerprint
				return k
			}(),
		},
		{name: "empty operation", key: newKey("gamma"), ev: store.AuditEvent{Time: t0}, wantErr: errdefs.ErrInvalidArgument},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := tt.ev
			if reflect.DeepEqual(e, store.AuditEvent{}) {
				e = ev("key.create")
			}
			if tt.wantErr != nil {
				unchanged(t, s, "CreateKey", tt.wantErr, func() error { return s.CreateKey(ctx, tt.key, e) })
				// The indexes must not have changed either.
				for _, v := range tt.key.Versions {
					if v.Fingerprint == "" {
						continue
					}
					k, _, err := s.FindKeyVersion(ctx, v.Fingerprint)
					if err == nil && k.Name != "alpha" {
						t.Fatalf("refused key's fingerprint %s now finds key %q", v.Fingerprint, k.Name)
					}
				}
				return
			}
			n := len(audit(t, s))
			must(t, "CreateKey", s.CreateKey(ctx, tt.key, e))
			got, err := s.GetKey(ctx, tt.key.Name)
			must(t, "GetKey", err)
			equal(t, "GetKey after CreateKey", got, tt.key)
			expectAudit(t, s, n, e)
		})
	}
}

func testGetKeyListKeys(t *testing.T, s store.Store) {
	ctx := context.Background()
	keys, err := s.ListKeys(ctx)
	must(t, "ListKeys on an empty store", err)
	if len(keys) != 0 {
		t.Fatalf("ListKeys on an empty store = %d keys", len(keys))
	}
	_, err = s.GetKey(ctx, "nope")
	checkErr(t, "GetKey unknown", err, errdefs.ErrNotFound)
	_, err = s.GetKey(ctx, "")
	checkErr(t, "GetKey empty name", err, errdefs.ErrInvalidArgument)

	var want []store.Key
	for _, name := range []string{"b", "a", "c", "B"} {
		k := newKey(name)
		must(t, "CreateKey "+name, s.CreateKey(ctx, k, ev("key.create")))
		want = append(want, k)
	}
	// Byte order: "B" < "a" < "b" < "c".
	want = []store.Key{want[3], want[1], want[0], want[2]}
	keys, err = s.ListKeys(ctx)
	must(t, "ListKeys", err)
	equal(t, "ListKeys", keys, want)
}

func testAddKeyVersion(t *testing.T, s store.Store) {
	ctx := context.Background()
	must(t, "CreateKey k", s.CreateKey(ctx, newKey("k"), ev("key.create")))
	must(t, "CreateKey other", s.CreateKey(ctx, newKey("other"), ev("key.create")))

	v2 := version("k", 2)
	n := len(audit(t, s))
	must(t, "AddKeyVersion 2", s.AddKeyVersion(ctx, "k", v2, ev("key.rotate")))
	expectAudit(t, s, n, ev("key.rotate"))
	k, err := s.GetKey(ctx, "k")
	must(t, "GetKey", err)
	equal(t, "versions", k.Versions, []store.KeyVersion{version("k", 1), v2})
	cur, ok := k.Current()
	if !ok || cur.Version != 2 {
		t.Fatalf("Current() = %d, %v; want version 2", cur.Version, ok)
	}
	fk, fv, err := s.FindKeyVersion(ctx, v2.Fingerprint)
	must(t, "FindKeyVersion v2", err)
	equal(t, "FindKeyVersion v2 key", fk, k)
	equal(t, "FindKeyVersion v2 version", fv, v2)

	edit := func(v store.KeyVersion, f func(*store.KeyVersion)) store.KeyVersion { f(&v); return v }
	tests := []struct {
		name    string
		key     string
		v       store.KeyVersion
		ev      store.AuditEvent
		wantErr error
	}{
		// Fresh fingerprints and CKA_IDs (from version 9), so only the
		// version number is wrong.
		{name: "existing version", key: "k", v: renumber(version("k", 9), 2), wantErr: errdefs.ErrAlreadyExists},
		{name: "older version", key: "k", v: renumber(version("k", 9), 1), wantErr: errdefs.ErrAlreadyExists},
		{name: "skipped version", key: "k", v: renumber(version("k", 9), 4), wantErr: errdefs.ErrInvalidArgument},
		{name: "version 0", key: "k", v: renumber(version("k", 9), 0), wantErr: errdefs.ErrInvalidArgument},
		{name: "unknown key", key: "nope", v: version("nope", 2), wantErr: errdefs.ErrNotFound},
		{name: "empty key name", key: "", v: version("k", 3), wantErr: errdefs.ErrInvalidArgument},
		{
			name: "fingerprint of another key", key: "k", wantErr: errdefs.ErrAlreadyExists,
			v: edit(version("k", 3), func(v *store.KeyVersion) { v.Fingerprint = version("other", 1).Fingerprint }),
		},
		{
			name: "CKA_ID of an older version", key: "k", wantErr: errdefs.ErrAlreadyExists,
			v: edit(version("k", 3), func(v *store.KeyVersion) { v.CKAID = version("k", 1).CKAID }),
		},
		{
			name: "empty fingerprint", key: "k", wantErr: errdefs.ErrInvalidArgument,
			v: edit(version("k", 3), func(v *store.KeyVersion) { v.Fingerprint = "" }),
		},
		{
			name: "empty CKA_ID", key: "k", wantErr: errdefs.ErrInvalidArgument,
			v: edit(version("k", 3), func(v *store.KeyVersion) { v.CKAID = nil }),
		},
		{name: "empty operation", key: "k", v: version("k", 3), ev: store.AuditEvent{Time: t0}, wantErr: errdefs.ErrInvalidArgument},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := tt.ev
			if reflect.DeepEqual(e, store.AuditEvent{}) {
				e = ev("key.rotate")
			}
			unchanged(t, s, "AddKeyVersion", tt.wantErr, func() error { return s.AddKeyVersion(ctx, tt.key, tt.v, e) })
		})
	}
	must(t, "AddKeyVersion 3", s.AddKeyVersion(ctx, "k", version("k", 3), ev("key.rotate")))
}

func renumber(v store.KeyVersion, n uint32) store.KeyVersion {
	v.Version = n
	return v
}

func testRevokeKeyVersions(t *testing.T, s store.Store) {
	ctx := context.Background()
	must(t, "CreateKey", s.CreateKey(ctx, newKey("k", 1, 2), ev("key.create")))

	t.Run("invalid", func(t *testing.T) {
		for _, tt := range []struct {
			name    string
			key     string
			reason  store.RevocationReason
			when    bool
			wantErr error
		}{
			{name: "unknown key", key: "nope", reason: store.ReasonSuperseded, when: true, wantErr: errdefs.ErrNotFound},
			{name: "empty name", key: "", reason: store.ReasonSuperseded, when: true, wantErr: errdefs.ErrInvalidArgument},
			{name: "unknown reason", key: "k", reason: "bored", when: true, wantErr: errdefs.ErrInvalidArgument},
			{name: "no time", key: "k", reason: store.ReasonSuperseded, wantErr: errdefs.ErrInvalidArgument},
		} {
			t.Run(tt.name, func(t *testing.T) {
				when := at(0)
				if !tt.when {
					when = time.Time{}
				}
				unchanged(t, s, "RevokeKeyVersions", tt.wantErr, func() error {
					return errOf(s.RevokeKeyVersions(ctx, tt.key, tt.reason, when, ev("key.revoke")))
				})
			})
		}
	})

	n := len(audit(t, s))
	t1 := at(10)
	revoke := func(reason store.RevocationReason) store.AuditEvent {
		e := ev("key.revoke")
		e.Detail = "reason=" + string(reason)
		return e
	}
	from, err := s.RevokeKeyVersions(ctx, "k", store.ReasonSuperseded, t1, revoke(store.ReasonSuperseded))
	if err != nil || from != "" {
		t.Fatalf("RevokeKeyVersions: escalated from %q, %v; want a revocation of the active versions", from, err)
	}
	expectAudit(t, s, n, revoke(store.ReasonSuperseded))
	k, err := s.GetKey(ctx, "k")
	must(t, "GetKey", err)
	for _, v := range k.Versions {
		if v.State != store.KeyRevoked || v.RevocationReason != store.ReasonSuperseded || v.RevokedAt == nil || !v.RevokedAt.Equal(t1) {
			t.Fatalf("version %d after revocation: state %q reason %q at %v", v.Version, v.State, v.RevocationReason, v.RevokedAt)
		}
	}
	if _, ok := k.Current(); ok {
		t.Fatal("a fully revoked key still has a current version")
	}
	// A revoked key's reason can only be escalated to key_compromise: the
	// same reason again, or another one, is refused and changes nothing.
	for _, r := range []store.RevocationReason{store.ReasonSuperseded, store.ReasonCessationOfOperation, store.ReasonPrivilegeWithdrawn} {
		unchanged(t, s, "RevokeKeyVersions again as "+string(r), errdefs.ErrFailedPrecondition, func() error {
			return errOf(s.RevokeKeyVersions(ctx, "k", r, at(11), ev("key.revoke")))
		})
	}
	n = len(audit(t, s))
	// The escalation is audited as one, decided in its commit: the caller
	// may have read the key before another caller's revocation committed.
	from, err = s.RevokeKeyVersions(ctx, "k", store.ReasonKeyCompromise, at(11), revoke(store.ReasonKeyCompromise))
	if err != nil || from != store.ReasonSuperseded {
		t.Fatalf("escalation to key_compromise: escalated from %q, %v; want from superseded", from, err)
	}
	escalated := revoke(store.ReasonKeyCompromise)
	escalated.Detail += " escalated_from=superseded"
	expectAudit(t, s, n, escalated)
	k, err = s.GetKey(ctx, "k")
	must(t, "GetKey", err)
	for _, v := range k.Versions {
		// The time it stopped signing stays; only the reason changes.
		if v.State != store.KeyRevoked || v.RevocationReason != store.ReasonKeyCompromise || v.RevokedAt == nil || !v.RevokedAt.Equal(t1) {
			t.Fatalf("version %d after escalation: state %q reason %q at %v", v.Version, v.State, v.RevocationReason, v.RevokedAt)
		}
	}
	// Compromise is final: nothing changes it, not even itself again.
	for _, r := range []store.RevocationReason{store.ReasonKeyCompromise, store.ReasonSuperseded} {
		unchanged(t, s, "RevokeKeyVersions after compromise as "+string(r), errdefs.ErrFailedPrecondition, func() error {
			return errOf(s.RevokeKeyVersions(ctx, "k", r, at(12), ev("key.revoke")))
		})
	}

	// A revoked key cannot be rotated back to life: the store refuses a
	// version added to it (a rotation that checked the key before a
	// concurrent revocation committed gets this), and nothing changes.
	unchanged(t, s, "AddKeyVersion after revocation", errdefs.ErrFailedPrecondition, func() error {
		return s.AddKeyVersion(ctx, "k", version("k", 3), ev("key.rotate"))
	})
	if err := s.AddKeyVersion(ctx, "k", version("k", 3), ev("key.rotate")); errdefs.ReasonOf(err) != errdefs.ReasonKeyRevoked {
		t.Fatalf("AddKeyVersion after revocation: %v, want reason KEY_REVOKED", err)
	}
	// FindKeyVersion sees the revocation.
	_, v, err := s.FindKeyVersion(ctx, version("k", 1).Fingerprint)
	must(t, "FindKeyVersion", err)
	if v.State != store.KeyRevoked {
		t.Fatalf("FindKeyVersion returned state %q after revocation", v.State)
	}
}

func testFindKeyVersion(t *testing.T, s store.Store) {
	ctx := context.Background()
	_, _, err := s.FindKeyVersion(ctx, version("k", 1).Fingerprint)
	checkErr(t, "FindKeyVersion on an empty store", err, errdefs.ErrNotFound)
	_, _, err = s.FindKeyVersion(ctx, "")
	checkErr(t, "FindKeyVersion empty", err, errdefs.ErrInvalidArgument)

	must(t, "CreateKey k", s.CreateKey(ctx, newKey("k", 1, 2), ev("key.create")))
	must(t, "CreateKey j", s.CreateKey(ctx, newKey("j"), ev("key.create")))
	for _, c := range []struct {
		key string
		v   uint32
	}{{"k", 1}, {"k", 2}, {"j", 1}} {
		k, v, err := s.FindKeyVersion(ctx, version(c.key, c.v).Fingerprint)
		must(t, "FindKeyVersion", err)
		if k.Name != c.key {
			t.Fatalf("FindKeyVersion(%s/%d) found key %q", c.key, c.v, k.Name)
		}
		equal(t, "FindKeyVersion version", v, version(c.key, c.v))
	}
	_, _, err = s.FindKeyVersion(ctx, version("k", 3).Fingerprint)
	if !errors.Is(err, errdefs.ErrNotFound) {
		t.Fatalf("FindKeyVersion unknown fingerprint: %v, want ErrNotFound", err)
	}
}
