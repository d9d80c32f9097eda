package service

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"strings"
	"testing"

	"github.com/signerd/signerd/internal/keystore"
	"github.com/signerd/signerd/internal/skill"
	"github.com/signerd/signerd/internal/store"
)

// TestSignatureRecordsCarryTheSignature: the audit record of Sign and
// SignSkill holds the raw signature handed out, so the log's leaf proves
// which signature was made, and SignatureLeaf finds it.
func TestSignatureRecordsCarryTheSignature(t *testing.T) {
	f := newFixture(t)
	f.createKey(t, "release", keystore.Ed25519)
	if _, err := f.svc.CreateKey(f.ctx, CreateKeyInput{Name: "ak", Algorithm: keystore.ECDSAP256, Org: "a.example"}); err != nil {
		t.Fatal(err)
	}
	d := sha256.Sum256([]byte("pkg"))
	out, err := f.svc.Sign(f.ctx, SignInput{KeyName: "release", Digest: d[:], ArtifactName: "pkg.so"})
	if err != nil {
		t.Fatal(err)
	}
	files := map[string]string{"SKILL.md": "sha256:" + strings.Repeat("ab", 32)}
	root, err := skill.ComputeRoot(files)
	if err != nil {
		t.Fatal(err)
	}
	sk, err := f.svc.SignSkill(f.ctx, SignSkillInput{KeyName: "ak", Root: root[:], Manifest: files, Domain: "a.example", SkillName: "s"})
	if err != nil {
		t.Fatal(err)
	}
	recs, err := f.st.ListAudit(f.ctx, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		op     string
		digest []byte
		rec    store.SignatureRecord
	}{
		{"sign", d[:], out.Record},
		{"skill.sign", root[:], sk.Record},
	} {
		var found *store.AuditRecord
		for i := range recs {
			if recs[i].Operation == c.op {
				found = &recs[i]
			}
		}
		if found == nil || len(found.Signature) == 0 || !bytes.Equal(found.Signature, c.rec.Signature) || found.Digest != hex.EncodeToString(c.digest) {
			t.Fatalf("%s record %+v does not carry the signature %x", c.op, found, c.rec.Signature)
		}
		leaf, err := f.st.SignatureLeaf(f.ctx, c.digest, c.rec.Signature)
		if err != nil || leaf != found.Seq-1 {
			t.Fatalf("%s: SignatureLeaf = %d, %v; want %d", c.op, leaf, err, found.Seq-1)
		}
	}
}
