package service

import (
	"encoding/json"
	"slices"
	"testing"

	"github.com/signerd/signerd/internal/keystore"
	"github.com/signerd/signerd/internal/store"
)

// TestDiscoveryListsTheDomainsRevokedKeys: a key revoked outright cannot
// publish a discovery document of its own, so the domain's other keys'
// documents list it in revoked_keys; a revoked key of another domain is
// not listed.
func TestDiscoveryListsTheDomainsRevokedKeys(t *testing.T) {
	f := newFixture(t)
	create := func(name, org string) store.Key {
		k, err := f.svc.CreateKey(f.ctx, CreateKeyInput{Name: name, Algorithm: keystore.ECDSAP256, Org: org})
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	create("skills", "example.com")
	old := create("skills-old", "example.com")
	other := create("elsewhere", "other.example")
	for _, name := range []string{"skills-old", "elsewhere"} {
		if _, err := f.svc.RevokeKey(f.ctx, name, store.ReasonSuperseded); err != nil {
			t.Fatal(err)
		}
	}
	raw, err := f.svc.Discovery(f.ctx, "skills", "Example", "")
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		RevokedKeys []string `json:"revoked_keys"`
	}
	if err := json.Unmarshal(raw, &doc); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(doc.RevokedKeys, []string{SchemaPinFingerprint(old.Versions[0].Fingerprint)}) {
		t.Fatalf("revoked_keys %q, want only skills-old's %s (not elsewhere's %s)", doc.RevokedKeys,
			SchemaPinFingerprint(old.Versions[0].Fingerprint), SchemaPinFingerprint(other.Versions[0].Fingerprint))
	}
}
