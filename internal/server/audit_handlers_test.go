package server

import (
	"testing"

	signerv1 "github.com/signerd/signerd/gen/signer/v1"
	"github.com/signerd/signerd/internal/store"
)

func TestAuditMethodRoles(t *testing.T) {
	for method, want := range map[string]Role{
		signerv1.AuditService_ListAudit_FullMethodName:         RoleAdmin,
		signerv1.AuditService_VerifyAudit_FullMethodName:       RoleAdmin,
		signerv1.AuditService_GetAuditPublicKey_FullMethodName: RoleVerifier,
	} {
		if got, ok := methodRoles[method]; !ok || got != want {
			t.Errorf("%s needs role %v (listed %v), want %v", method, got, ok, want)
		}
	}
}

func TestDamageToPB(t *testing.T) {
	seen := map[signerv1.AuditDamage]bool{}
	for _, kind := range []string{store.ChainEdited, store.ChainInserted, store.ChainDeleted, store.ChainReordered,
		store.ChainBrokenLink, store.ChainBadCheckpoint, store.ChainWrongCheckpointKey, store.ChainStateUnexplained} {
		d := damageToPB(kind)
		if d == signerv1.AuditDamage_AUDIT_DAMAGE_UNSPECIFIED || seen[d] {
			t.Errorf("kind %q maps to %v", kind, d)
		}
		seen[d] = true
	}
	if len(seen) != len(signerv1.AuditDamage_name)-1 {
		t.Errorf("%d kinds map to %d of the proto's damages", len(seen), len(signerv1.AuditDamage_name)-1)
	}
}
