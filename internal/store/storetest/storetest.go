// Package storetest is the conformance suite every store.Store backend must
// pass. A backend's test calls Run with a function that opens a new, empty
// store; the suite checks the semantics the service layer relies on
// (documented on store.Store and in DESIGN.md "State in bbolt"), the audit
// chain, and behaviour under concurrent writers, using only the interface.
package storetest

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"testing"
	"time"

	"github.com/signerd/signerd/internal/store"
)

// Run runs the conformance suite. open MUST return a new, empty store each
// time it is called and arrange (with t.Cleanup) for it to be closed; the
// suite never calls Close. Subtests run in parallel, each on its own store.
func Run(t *testing.T, open func(t *testing.T) store.Store) {
	tests := []struct {
		name string
		fn   func(*testing.T, store.Store)
	}{
		{"CreateKey", testCreateKey},
		{"GetKeyListKeys", testGetKeyListKeys},
		{"AddKeyVersion", testAddKeyVersion},
		{"RevokeKeyVersions", testRevokeKeyVersions},
		{"FindKeyVersion", testFindKeyVersion},
		{"GetOrgUnknown", testGetOrgUnknown},
		{"OrgConfigured", testOrgConfigured},
		{"TrustKeyRemoveTrust", testTrust},
		{"CarryTrust", testCarryTrust},
		{"TrustKeyVersion", testTrustKeyVersion},
		{"RemoveTrustStillVia", testRemoveTrustStillVia},
		{"RemoveTrustManyGrants", testRemoveTrustManyGrants},
		{"GrantTrustRevokeGrant", testGrants},
		{"SetRequireSignatures", testRequireSignatures},
		{"ListOrgs", testListOrgs},
		{"PutSignature", testPutSignature},
		{"PutSignatureRevoked", testPutSignatureRevoked},
		{"SignRacingRevoke", testSignRacingRevoke},
		{"AppendAuditListAudit", testAppendAudit},
		{"AuditRecordsEveryChange", testAuditRecordsEveryChange},
		{"AuditHeadVerifyAudit", testAuditHeadVerifyAudit},
		{"AuditKey", testAuditKey},
		{"Checkpoints", testCheckpoints},
		{"LogKey", testLogKey},
		{"CanceledContext", testCanceledContext},
		{"ConcurrentPutSignature", testConcurrentPutSignature},
		{"ConcurrentMixedWriters", testConcurrentMixed},
		{"LogTree", testLogTree},
		{"SignatureLeaf", testSignatureLeaf},
		{"TreeOps", testTreeOps},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			tt.fn(t, open(t))
		})
	}
}

// t0 is the suite's clock: UTC, no monotonic reading, nanoseconds set, so
// a backend that loses precision or the zone is caught by reflect.DeepEqual.
var t0 = time.Date(2025, 3, 1, 12, 0, 0, 123456789, time.UTC)

func at(minutes int) time.Time { return t0.Add(time.Duration(minutes) * time.Minute) }

func ev(op string) store.AuditEvent {
	return store.AuditEvent{Time: t0, Caller: "uid:1000", Operation: op, Outcome: "ok"}
}

// version returns a key version whose CKA_ID, public key and fingerprint
// are derived from name and v, so they are unique per (name, v).
func version(name string, v uint32) store.KeyVersion {
	sum := sha256.Sum256(fmt.Appendf(nil, "%s/%d", name, v))
	return store.KeyVersion{
		Version:     v,
		CKAID:       sum[:16],
		PublicKey:   sum[:],
		Fingerprint: hex.EncodeToString(sum[:]),
		State:       store.KeyActive,
		CreatedAt:   at(int(v)),
	}
}

func newKey(name string, versions ...uint32) store.Key {
	if len(versions) == 0 {
		versions = []uint32{1}
	}
	k := store.Key{Name: name, Org: "acme", Algorithm: "ed25519", CreatedAt: t0}
	for _, v := range versions {
		k.Versions = append(k.Versions, version(name, v))
	}
	return k
}

func digest(s string) []byte {
	d := sha256.Sum256([]byte(s))
	return d[:]
}

// checkErr fails unless err matches want (nil: no error) with errors.Is.
func checkErr(t *testing.T, what string, err, want error) {
	t.Helper()
	switch {
	case want == nil && err != nil:
		t.Fatalf("%s: unexpected error %v", what, err)
	case want != nil && !errors.Is(err, want):
		t.Fatalf("%s: error %v, want %v", what, err, want)
	}
}

func must(t *testing.T, what string, err error) {
	t.Helper()
	checkErr(t, what, err, nil)
}

func equal(t *testing.T, what string, got, want any) {
	t.Helper()
	if !reflect.DeepEqual(got, want) {
		g, _ := json.MarshalIndent(got, "", "  ")
		w, _ := json.MarshalIndent(want, "", "  ")
		t.Fatalf("%s:\n got %s\nwant %s", what, g, w)
	}
}

// snapshot is everything observable through the list methods.
type snapshot struct {
	Keys  []store.Key
	Orgs  []store.Org
	Audit []store.AuditRecord
}

func take(t *testing.T, s store.Store) snapshot {
	t.Helper()
	ctx := context.Background()
	keys, err := s.ListKeys(ctx)
	must(t, "ListKeys", err)
	orgs, err := s.ListOrgs(ctx)
	must(t, "ListOrgs", err)
	return snapshot{Keys: keys, Orgs: orgs, Audit: audit(t, s)}
}

// audit returns the whole log after checking that it is a valid chain.
func audit(t *testing.T, s store.Store) []store.AuditRecord {
	t.Helper()
	recs, err := s.ListAudit(context.Background(), 0, 0)
	must(t, "ListAudit", err)
	if err := store.VerifyAuditChain(recs, nil, 0); err != nil {
		t.Fatalf("audit chain: %v", err)
	}
	return recs
}

// expectAudit checks that the log grew from before to exactly the given
// events, in order, stored as given.
func expectAudit(t *testing.T, s store.Store, before int, want ...store.AuditEvent) {
	t.Helper()
	recs := audit(t, s)
	if len(recs) != before+len(want) {
		t.Fatalf("audit log has %d records, want %d", len(recs), before+len(want))
	}
	for i, w := range want {
		equal(t, fmt.Sprintf("audit record %d", before+i+1), recs[before+i].AuditEvent, w)
	}
}

// unchanged runs op, which must fail with want, and checks that nothing
// observable changed.
func unchanged(t *testing.T, s store.Store, what string, want error, op func() error) {
	t.Helper()
	before := take(t, s)
	checkErr(t, what, op(), want)
	equal(t, what+": state after a refused change", take(t, s), before)
}

// errOf is the error of a call that also returns a value.
func errOf[T any](_ T, err error) error { return err }
