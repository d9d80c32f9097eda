package service

import (
	"errors"
	"strings"
	"testing"

	"github.com/signerd/signerd/internal/errdefs"
	"github.com/signerd/signerd/internal/keystore"
	"github.com/signerd/signerd/internal/skill"
)

// TestFaultySignatureNeverReleased: whatever a faulty HSM corrupts in a
// signature, Sign (Ed25519) and SignSkill (ECDSA P-256) refuse it as an
// internal error, record nothing and release nothing; once the HSM is
// healthy again, the same key signs.
func TestFaultySignatureNeverReleased(t *testing.T) {
	faults := []struct {
		name    string
		corrupt func([]byte) []byte
	}{
		{"first bit", func(s []byte) []byte { s[0] ^= 1; return s }},
		{"last byte", func(s []byte) []byte { s[len(s)-1] ^= 0x10; return s }},
		{"middle bit", func(s []byte) []byte { s[len(s)/2] ^= 0x04; return s }},
		{"zeros", func(s []byte) []byte { return make([]byte, len(s)) }},
		{"truncated", func(s []byte) []byte { return s[:len(s)-1] }},
	}
	for _, fault := range faults {
		t.Run(fault.name, func(t *testing.T) {
			f := newFixture(t)
			f.createKey(t, "rel", keystore.Ed25519)
			f.createKey(t, "sk", keystore.ECDSAP256)
			files := map[string]string{"SKILL.md": "sha256:" + strings.Repeat("cd", 32)}
			root, err := skill.ComputeRoot(files)
			if err != nil {
				t.Fatal(err)
			}
			signSkill := func() error {
				_, err := f.svc.SignSkill(f.ctx, SignSkillInput{KeyName: "sk", Root: root[:], Manifest: files, Domain: "x.example", SkillName: "s"})
				return err
			}
			signPkg := func() error {
				_, err := f.svc.Sign(f.ctx, SignInput{KeyName: "rel", Digest: digestOf("pkg"), ArtifactName: "p"})
				return err
			}
			// Sign once healthy first, so the check that refuses below is
			// the cached one the daemon uses under load.
			if err := signPkg(); err != nil {
				t.Fatal(err)
			}
			before, err := f.st.ListAudit(f.ctx, 0, 0)
			if err != nil {
				t.Fatal(err)
			}
			f.keys.fault.Store(&fault.corrupt)
			for name, sign := range map[string]func() error{"Sign": signPkg, "SignSkill": signSkill} {
				if err := sign(); !errors.Is(err, errdefs.ErrInternal) {
					t.Errorf("%s with a faulty HSM: %v, want an internal error", name, err)
				}
			}
			after, err := f.st.ListAudit(f.ctx, 0, 0)
			if err != nil {
				t.Fatal(err)
			}
			if len(after) != len(before) {
				t.Errorf("refused signatures left %d audit records", len(after)-len(before))
			}
			if recs, err := f.st.SignaturesByDigest(f.ctx, root[:]); err != nil || len(recs) != 0 {
				t.Errorf("skill signature recorded: %v, %v", recs, err)
			}
			f.keys.fault.Store(nil)
			if err := signPkg(); err != nil {
				t.Errorf("Sign after the fault: %v", err)
			}
			if err := signSkill(); err != nil {
				t.Errorf("SignSkill after the fault: %v", err)
			}
		})
	}
}
