package service

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"testing"

	"github.com/signerd/signerd/internal/errdefs"
	"github.com/signerd/signerd/internal/keystore"
	"github.com/signerd/signerd/internal/store"
)

// revokeBeforeAddVersion: `key revoke` commits between RotateKey's check
// that the key has a current version and the commit of the new version
// (the window holds the HSM's key generation).
type revokeBeforeAddVersion struct {
	store.Store
	other *Service
}

func (s revokeBeforeAddVersion) AddKeyVersion(ctx context.Context, name string, v store.KeyVersion, ev store.AuditEvent) error {
	if _, err := s.other.RevokeKey(ctx, name, store.ReasonKeyCompromise); err != nil {
		return err
	}
	return s.Store.AddKeyVersion(ctx, name, v, ev)
}

// TestRotateRacingRevoke: once `key revoke` has returned, the key signs
// nothing, whatever rotation raced it: the rotation is refused KEY_REVOKED
// in the commit that would have added its version (before, the new
// version was active, and trusted by every org that trusted the old one).
func TestRotateRacingRevoke(t *testing.T) {
	f := newFixture(t)
	f.createKey(t, "k", keystore.Ed25519)
	f.trust(t, "acme", "k")
	quiet := Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
	racing := New(revokeBeforeAddVersion{Store: f.st, other: f.svc}, f.keys, quiet)
	if _, err := racing.RotateKey(f.ctx, "k"); !errors.Is(err, errdefs.ErrFailedPrecondition) || errdefs.ReasonOf(err) != errdefs.ReasonKeyRevoked {
		t.Fatalf("RotateKey racing a revocation: %v, want KEY_REVOKED", err)
	}
	fresh := New(f.st, f.keys, quiet)
	if _, err := fresh.Sign(f.ctx, SignInput{KeyName: "k", Digest: digestOf("after the revocation"), ArtifactName: "pkg.so"}); errdefs.ReasonOf(err) != errdefs.ReasonKeyRevoked {
		t.Fatalf("Sign after the revocation returned: %v, want KEY_REVOKED", err)
	}
	k, err := f.st.GetKey(f.ctx, "k")
	if err != nil || len(k.Versions) != 1 {
		t.Fatalf("key after the raced rotation: %d versions, %v; want the one, revoked", len(k.Versions), err)
	}
	trusted, err := fresh.ListTrusted(f.ctx, "acme")
	if err != nil || len(trusted.Keys) != 1 {
		t.Fatalf("acme trusts %d keys after the raced rotation (%v), want 1", len(trusted.Keys), err)
	}
}
