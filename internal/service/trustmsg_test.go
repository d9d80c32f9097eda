package service

import (
	"errors"
	"strings"
	"testing"

	"github.com/signerd/signerd/internal/errdefs"
	"github.com/signerd/signerd/internal/keystore"
)

// TestTrustEditRefusals: removing a trust or revoking a grant that is not
// there names the org and the key (or child) once, and an edit of an org
// nobody configured says so (NOT_FOUND, UNKNOWN_ORG) instead of claiming the
// org lacks that one key.
func TestTrustEditRefusals(t *testing.T) {
	f := newFixture(t)
	f.createKey(t, "a", keystore.Ed25519)
	f.createKey(t, "b", keystore.Ed25519)
	f.trust(t, "acme", "a")
	tb := f.trust(t, "child", "b")
	f.trust(t, "parent", "a")
	if err := f.svc.GrantTrust(f.ctx, "parent", "child"); err != nil {
		t.Fatal(err)
	}
	missing := strings.Repeat("0", 64)

	tests := []struct {
		name       string
		run        func() error
		reason     errdefs.Reason
		wantOnce   []string
		wantSubstr string
	}{
		{"remove untrusted key", func() error { _, err := f.svc.RemoveTrust(f.ctx, "acme", missing); return err },
			"", []string{`"acme"`, missing}, "does not trust key"},
		{"remove key held only through a grant", func() error { _, err := f.svc.RemoveTrust(f.ctx, "parent", tb.Fingerprint); return err },
			"", []string{`"parent"`, tb.Fingerprint}, "through its grant"},
		{"remove from unknown org", func() error { _, err := f.svc.RemoveTrust(f.ctx, "nobody", missing); return err },
			errdefs.ReasonUnknownOrg, []string{`"nobody"`}, "not configured"},
		{"revoke absent grant", func() error { return f.svc.RevokeGrant(f.ctx, "acme", "child") },
			"", []string{`"acme"`, `"child"`}, "grants no trust"},
		{"revoke grant of unknown org", func() error { return f.svc.RevokeGrant(f.ctx, "nobody", "child") },
			errdefs.ReasonUnknownOrg, []string{`"nobody"`}, "not configured"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.run()
			if !errors.Is(err, errdefs.ErrNotFound) {
				t.Fatalf("err = %v, want NOT_FOUND", err)
			}
			if got := errdefs.ReasonOf(err); got != tt.reason {
				t.Errorf("reason = %q, want %q", got, tt.reason)
			}
			msg := err.Error()
			if !strings.Contains(msg, tt.wantSubstr) {
				t.Errorf("message %q does not contain %q", msg, tt.wantSubstr)
			}
			for _, s := range tt.wantOnce {
				if n := strings.Count(msg, s); n != 1 {
					t.Errorf("message %q names %s %d times, want once", msg, s, n)
				}
			}
		})
	}
}
