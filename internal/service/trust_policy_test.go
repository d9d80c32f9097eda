package service

import (
	"errors"
	"testing"

	"github.com/signerd/signerd/internal/errdefs"
)

// TestRequireSignaturesUnknownOrg: the policy of an org nobody configured
// is UNKNOWN_ORG, as its trust list is, not a "false" that reads as a
// policy admitting unsigned code; a configured org's is its own.
func TestRequireSignaturesUnknownOrg(t *testing.T) {
	f := newFixture(t)
	if _, err := f.svc.RequireSignatures(f.ctx, "no-such-org"); !errors.Is(err, errdefs.ErrNotFound) || errdefs.ReasonOf(err) != errdefs.ReasonUnknownOrg {
		t.Fatalf("RequireSignatures of an unknown org: %v, want NOT_FOUND UNKNOWN_ORG", err)
	}
	if err := f.svc.SetRequireSignatures(f.ctx, "strict", true); err != nil {
		t.Fatal(err)
	}
	if got, err := f.svc.RequireSignatures(f.ctx, "strict"); err != nil || !got {
		t.Fatalf("RequireSignatures of a configured org: %v, %v", got, err)
	}
}
