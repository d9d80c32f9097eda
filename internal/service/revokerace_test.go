package service

import (
	"context"
	"crypto/sha256"
	"errors"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/signerd/signerd/internal/errdefs"
	"github.com/signerd/signerd/internal/keystore"
	"github.com/signerd/signerd/internal/skill"
	"github.com/signerd/signerd/internal/store"
)

// revokeFirst is a store on which the key is revoked between a signing
// call's look-up of its key and the record of its signature: the window
// of a Sign racing `key revoke`.
type revokeFirst struct {
	store.Store
	key string
}

func (s revokeFirst) PutSignature(ctx context.Context, rec store.SignatureRecord, ev store.AuditEvent) error {
	revoke := store.AuditEvent{Time: time.Now().UTC(), Caller: "uid:operator", Operation: "key.revoke", Outcome: "ok", Key: s.key}
	if err := s.Store.RevokeKeyVersions(ctx, s.key, store.ReasonKeyCompromise, time.Now(), revoke); err != nil {
		return err
	}
	return s.Store.PutSignature(ctx, rec, ev)
}

// TestSignRacingRevokeReleasesNothing: a signature whose key is revoked
// before it is recorded is not returned, and the log ends with the
// revocation, for both formats.
func TestSignRacingRevokeReleasesNothing(t *testing.T) {
	files := map[string]string{"SKILL.md": "sha256:" + strings.Repeat("ab", 32)}
	root, err := skill.ComputeRoot(files)
	if err != nil {
		t.Fatal(err)
	}
	pkg := sha256.Sum256([]byte("pkg"))
	for _, tt := range []struct {
		name string
		alg  keystore.Algorithm
		sign func(*Service, context.Context) ([]byte, error)
	}{
		{"cloacina", keystore.Ed25519, func(s *Service, ctx context.Context) ([]byte, error) {
			out, err := s.Sign(ctx, SignInput{KeyName: "k", Digest: pkg[:], ArtifactName: "pkg.so"})
			return out.Document, err
		}},
		{"schemapin", keystore.ECDSAP256, func(s *Service, ctx context.Context) ([]byte, error) {
			out, err := s.SignSkill(ctx, SignSkillInput{KeyName: "k", Root: root[:], Manifest: files, Domain: "a.example", SkillName: "s"})
			return out.Document, err
		}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t)
			if _, err := f.svc.CreateKey(f.ctx, CreateKeyInput{Name: "k", Algorithm: tt.alg, Org: "a.example"}); err != nil {
				t.Fatal(err)
			}
			racing := New(revokeFirst{Store: f.st, key: "k"}, f.keys, Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
			doc, err := tt.sign(racing, f.ctx)
			if !errors.Is(err, errdefs.ErrFailedPrecondition) || errdefs.ReasonOf(err) != errdefs.ReasonKeyRevoked {
				t.Fatalf("signing as the key is revoked: %v, want KEY_REVOKED", err)
			}
			if doc != nil {
				t.Fatalf("a document was returned with the refusal: %q", doc)
			}
			recs, err := f.st.ListAudit(f.ctx, 0, 0)
			if err != nil {
				t.Fatal(err)
			}
			if last := recs[len(recs)-1]; last.Operation != "key.revoke" {
				t.Fatalf("last audit record %q, want key.revoke", last.Operation)
			}
		})
	}
}
