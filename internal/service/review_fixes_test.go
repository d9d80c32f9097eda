package service

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/signerd/signerd/internal/errdefs"
	"github.com/signerd/signerd/internal/keystore"
	"github.com/signerd/signerd/internal/skill"
	"github.com/signerd/signerd/internal/store"
)

// A caller that cancels (or sends a tiny deadline) cannot keep its refused
// attempts out of the audit log.
func TestRefusalsAuditedDespiteCancelledContext(t *testing.T) {
	f := newFixture(t)
	ctx, cancel := context.WithCancel(f.ctx)
	cancel()
	f.svc.RecordDenial(ctx, "/signer.v1.SignerService/Sign", "denied for the test")
	if _, err := f.svc.Verify(ctx, VerifyInput{Org: "acme", Digest: digestOf("x"), Document: []byte("{}")}); !errors.Is(err, errdefs.ErrMalformedSignature) {
		t.Fatalf("Verify = %v", err)
	}
	recs, err := f.st.ListAudit(f.ctx, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	var denied, verify bool
	for _, r := range recs {
		denied = denied || r.Outcome == "denied"
		verify = verify || (r.Operation == "verify" && r.Outcome == string(errdefs.ReasonMalformedSignature))
	}
	if !denied || !verify {
		t.Fatalf("refusals missing from the audit log (denied=%t verify=%t): %+v", denied, verify, recs)
	}
}

func TestClipEvent(t *testing.T) {
	long := strings.Repeat("é", 2000) // 4000 bytes
	ev := clipEvent(store.AuditEvent{Detail: long, Org: "a\x1b[31mred", Key: "ok"})
	if len(ev.Detail) > maxAuditField+64 || !strings.Contains(ev.Detail, "bytes cut") || !strings.HasPrefix(long, strings.Split(ev.Detail, "…")[0]) {
		t.Fatalf("detail not clipped on a rune boundary: %d bytes %q", len(ev.Detail), ev.Detail[len(ev.Detail)-40:])
	}
	if ev.Org != "a?[31mred" || ev.Key != "ok" {
		t.Fatalf("control characters kept: %q %q", ev.Org, ev.Key)
	}
}

// A SchemaPin key created for one domain neither signs nor verifies for
// another, so its revocation is always published where verifiers look.
func TestSkillKeyBoundToDomain(t *testing.T) {
	f := newFixture(t)
	if _, err := f.svc.CreateKey(f.ctx, CreateKeyInput{Name: "ak", Algorithm: keystore.ECDSAP256, Org: "a.example"}); err != nil {
		t.Fatal(err)
	}
	files := map[string]string{"SKILL.md": "sha256:" + strings.Repeat("ab", 32)}
	root, err := skill.ComputeRoot(files)
	if err != nil {
		t.Fatal(err)
	}
	sign := func(domain string) (SignSkillOutput, error) {
		return f.svc.SignSkill(f.ctx, SignSkillInput{KeyName: "ak", Root: root[:], Manifest: files, Domain: domain, SkillName: "s"})
	}
	if _, err := sign("b.example"); !errors.Is(err, errdefs.ErrFailedPrecondition) {
		t.Fatalf("signing for another domain: %v", err)
	}
	out, err := sign("A.Example.")
	if err != nil {
		t.Fatalf("signing for the key's own domain (case, trailing dot): %v", err)
	}
	// b.example is nobody's org: refused as such, whatever the signature.
	_, err = f.svc.VerifySkill(f.ctx, VerifySkillInput{Domain: "b.example", Root: root[:], Files: files, Document: out.Document})
	if !errors.Is(err, errdefs.ErrUnknownOrg) {
		t.Fatalf("verifying for an unknown domain: %v", err)
	}
	if err := f.svc.SetRequireSignatures(f.ctx, "b.example", true); err != nil {
		t.Fatal(err)
	}
	_, err = f.svc.VerifySkill(f.ctx, VerifySkillInput{Domain: "b.example", Root: root[:], Files: files, Document: out.Document})
	if v, ok := errdefs.AsVerification(err); !ok || v.Code != "domain_mismatch" {
		t.Fatalf("verifying for another domain: %v", err)
	}
	if _, err := f.svc.VerifySkill(f.ctx, VerifySkillInput{Domain: "A.Example.", Root: root[:], Files: files, Document: out.Document}); err != nil {
		t.Fatalf("verify: %v", err)
	}
	for _, bad := range []string{"a\x1bb.example", "ex ample.com", "https://x", strings.Repeat("a", 300)} {
		if _, err := sign(bad); !errors.Is(err, errdefs.ErrInvalidArgument) {
			t.Errorf("domain %q accepted: %v", bad, err)
		}
	}
	// Refused before the HSM: bad requests cost no signature.
	before := f.keys.signs.Load()
	for name, in := range map[string]SignSkillInput{
		"empty skill name":  {KeyName: "ak", Root: root[:], Manifest: files, Domain: "a.example"},
		"bad previous_hash": {KeyName: "ak", Root: root[:], Manifest: files, Domain: "a.example", SkillName: "s", Options: skill.SignOptions{PreviousHash: "nope"}},
		"negative expiry":   {KeyName: "ak", Root: root[:], Manifest: files, Domain: "a.example", SkillName: "s", Options: skill.SignOptions{ExpiresIn: -1}},
		"another domain":    {KeyName: "ak", Root: root[:], Manifest: files, Domain: "b.example", SkillName: "s"},
	} {
		if _, err := f.svc.SignSkill(f.ctx, in); err == nil {
			t.Errorf("%s: SignSkill succeeded", name)
		}
	}
	if n := f.keys.signs.Load() - before; n != 0 {
		t.Fatalf("refused requests made %d HSM signatures", n)
	}
}
