package service

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"io"
	"log/slog"
	"slices"
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
	if _, err := s.Store.RevokeKeyVersions(ctx, s.key, store.ReasonKeyCompromise, time.Now(), revoke); err != nil {
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

// signBeforeRevoke is a store on which a signing call by other is recorded
// between `key revoke` taking its time and committing: the window of a
// revocation racing a Sign, or of replicas whose clocks disagree.
type signBeforeRevoke struct {
	store.Store
	sign func() error
}

func (s signBeforeRevoke) RevokeKeyVersions(ctx context.Context, name string, reason store.RevocationReason, at time.Time, ev store.AuditEvent) (store.RevocationReason, error) {
	if err := s.sign(); err != nil {
		return "", err
	}
	return s.Store.RevokeKeyVersions(ctx, name, reason, at, ev)
}

// TestSignRecordedBeforeSupersededRevocation: a signature recorded before
// a superseded revocation committed keeps verifying, though its recorded
// time is after the revocation's (taken before the commit, or by a replica
// whose clock is behind): the store refuses any record of a version after
// its revocation, so a record is proof of the order and the clocks are not
// asked. A compromise still refuses it.
func TestSignRecordedBeforeSupersededRevocation(t *testing.T) {
	files := map[string]string{"SKILL.md": "sha256:" + strings.Repeat("cd", 32)}
	root, err := skill.ComputeRoot(files)
	if err != nil {
		t.Fatal(err)
	}
	pkg := sha256.Sum256([]byte("pkg"))
	t0 := time.Date(2026, 12, 5, 12, 0, 0, 0, time.UTC)
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	for _, tt := range []struct {
		name   string
		alg    keystore.Algorithm
		sign   func(*Service, context.Context) ([]byte, error)
		verify func(*Service, context.Context, []byte) error
	}{
		{"cloacina", keystore.Ed25519, func(s *Service, ctx context.Context) ([]byte, error) {
			out, err := s.Sign(ctx, SignInput{KeyName: "k", Digest: pkg[:], ArtifactName: "pkg.so"})
			return out.Document, err
		}, func(s *Service, ctx context.Context, doc []byte) error {
			_, err := s.Verify(ctx, VerifyInput{Org: "a.example", Digest: pkg[:], Document: doc})
			return err
		}},
		{"cloacina without a document", keystore.Ed25519, func(s *Service, ctx context.Context) ([]byte, error) {
			out, err := s.Sign(ctx, SignInput{KeyName: "k", Digest: pkg[:], ArtifactName: "pkg.so"})
			return out.Document, err
		}, func(s *Service, ctx context.Context, _ []byte) error {
			_, err := s.Verify(ctx, VerifyInput{Org: "a.example", Digest: pkg[:]})
			return err
		}},
		{"schemapin", keystore.ECDSAP256, func(s *Service, ctx context.Context) ([]byte, error) {
			out, err := s.SignSkill(ctx, SignSkillInput{KeyName: "k", Root: root[:], Manifest: files, Domain: "a.example", SkillName: "s"})
			return out.Document, err
		}, func(s *Service, ctx context.Context, doc []byte) error {
			_, err := s.VerifySkill(ctx, VerifySkillInput{Domain: "a.example", Root: root[:], Files: files, Document: doc})
			return err
		}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t)
			if _, err := f.svc.CreateKey(f.ctx, CreateKeyInput{Name: "k", Algorithm: tt.alg, Org: "a.example"}); err != nil {
				t.Fatal(err)
			}
			f.trust(t, "a.example", "k")
			// The signing replica's clock is a second ahead of the
			// revoking one's.
			signer := New(f.st, f.keys, Options{Logger: quiet, Now: func() time.Time { return t0.Add(time.Second) }})
			var doc []byte
			racing := New(signBeforeRevoke{Store: f.st, sign: func() (err error) {
				doc, err = tt.sign(signer, f.ctx)
				return err
			}}, f.keys, Options{Logger: quiet, Now: func() time.Time { return t0 }})
			if _, err := racing.RevokeKey(f.ctx, "k", store.ReasonSuperseded); err != nil {
				t.Fatal(err)
			}
			if err := tt.verify(f.svc, f.ctx, doc); err != nil {
				t.Fatalf("a signature recorded before the superseded revocation: %v, want verified", err)
			}
			if _, err := tt.sign(f.svc, f.ctx); errdefs.ReasonOf(err) != errdefs.ReasonKeyRevoked {
				t.Fatalf("Sign after the revocation: %v, want KEY_REVOKED", err)
			}
			if _, err := f.svc.RevokeKey(f.ctx, "k", store.ReasonKeyCompromise); err != nil {
				t.Fatal(err)
			}
			if err := tt.verify(f.svc, f.ctx, doc); errdefs.ReasonOf(err) != errdefs.ReasonKeyRevoked {
				t.Fatalf("the same signature after escalation to key_compromise: %v, want KEY_REVOKED", err)
			}
		})
	}
}

// TestEscalationRacingRevocation: `key revoke --reason key_compromise`
// that read the key active, committing after another caller's superseded
// revocation, escalates it, and its audit record and the daemon's log
// say so (the log said "key revoked", from the caller's read).
func TestEscalationRacingRevocation(t *testing.T) {
	f := newFixture(t)
	f.createKey(t, "k", keystore.Ed25519)
	var logged bytes.Buffer
	racing := New(signBeforeRevoke{Store: f.st, sign: func() error {
		_, err := f.svc.RevokeKey(f.ctx, "k", store.ReasonSuperseded)
		return err
	}}, f.keys, Options{Logger: slog.New(slog.NewTextHandler(&logged, nil))})
	out, err := racing.RevokeKey(f.ctx, "k", store.ReasonKeyCompromise)
	if err != nil {
		t.Fatal(err)
	}
	if out.EscalatedFrom != store.ReasonSuperseded {
		t.Fatalf("RevokeKey answered escalated from %q, want superseded", out.EscalatedFrom)
	}
	recs, err := f.st.ListAudit(f.ctx, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, r := range recs {
		if r.Operation == "key.revoke" {
			got = append(got, r.Detail)
		}
	}
	want := []string{"reason=superseded", "reason=key_compromise escalated_from=superseded"}
	if !slices.Equal(got, want) {
		t.Fatalf("key.revoke records %q, want %q", got, want)
	}
	if l := logged.String(); !strings.Contains(l, `msg="key revocation escalated"`) || !strings.Contains(l, "escalated_from=superseded") {
		t.Fatalf("the daemon logged %q, want the escalation from superseded", l)
	}
}
