package softhsmtest

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/signerd/signerd/client"
	signerv1 "github.com/signerd/signerd/gen/signer/v1"
	"github.com/signerd/signerd/internal/errdefs"
	"github.com/signerd/signerd/internal/skill"
)

// makeSkill writes a small skill folder.
func makeSkill(t *testing.T) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "hello-skill")
	os.MkdirAll(filepath.Join(dir, "scripts"), 0o755)
	writeFile(t, dir, "SKILL.md", []byte("---\nname: hello-skill\ndescription: says hello\n---\n# Hello\n"))
	writeFile(t, filepath.Join(dir, "scripts"), "run.sh", []byte("#!/bin/sh\necho hello\n"))
	writeFile(t, dir, ".hidden", nil)
	return dir
}

// TestSkillSigningThroughHSM: sign a skill with an HSM key in both digest
// conventions; openssl accepts each with the matching command; the daemon
// verifies it and detects edited metadata; exports are well formed.
func TestSkillSigningThroughHSM(t *testing.T) {
	d := startDaemon(t)
	mustSignctl(t, d, "key", "create", "skills", "--algorithm", "ecdsa-p256", "--org", "example.com")
	mustSignctl(t, d, "key", "create", "pkgs", "--algorithm", "ed25519")
	pubPEM := writeFile(t, t.TempDir(), "skills.pub.pem", []byte(mustSignctl(t, d, "key", "public", "skills").stdout))
	// A configured org whose claim on example.com's skills must fail.
	mustSignctl(t, d, "policy", "set", "--org", "evil.example", "--require-signatures=true")

	for _, conv := range []string{"sha256", "go"} {
		t.Run(conv, func(t *testing.T) {
			dir := makeSkill(t)
			r := mustSignctl(t, d, "skill", "sign", dir, "--key", "skills", "--domain", "example.com", "--digest", conv, "--expires-in", "30d", "-o", "json").json(t)
			if r["digest_convention"] != conv || r["skill_name"] != "hello-skill" {
				t.Fatalf("skill sign: %v", r)
			}
			sigPath := filepath.Join(dir, ".schemapin.sig")
			raw, err := os.ReadFile(sigPath)
			if err != nil {
				t.Fatal(err)
			}
			sig, err := skill.ParseSignature(raw)
			if err != nil {
				t.Fatal(err)
			}
			if sig.SchemapinVersion != "1.4" || sig.ExpiresAt == "" || sig.Domain != "example.com" || !strings.HasPrefix(sig.SignerKid, "sha256:") {
				t.Fatalf(".schemapin.sig: %s", raw)
			}
			m, err := skill.Canonicalize(t.Context(), dir)
			if err != nil {
				t.Fatal(err)
			}
			if sig.SkillHash != m.SkillHash() {
				t.Fatalf("skill_hash %s, want %s", sig.SkillHash, m.SkillHash())
			}
			der, _ := base64.StdEncoding.DecodeString(sig.Signature)
			tmp := t.TempDir()
			rootFile := writeFile(t, tmp, "root.bin", m.Root[:])
			derFile := writeFile(t, tmp, "sig.der", der)
			sha := openssl(t, "dgst", "-sha256", "-verify", pubPEM, "-signature", derFile, rootFile)
			goConv := openssl(t, "pkeyutl", "-verify", "-pubin", "-inkey", pubPEM, "-in", rootFile, "-sigfile", derFile)
			if (conv == "sha256") != (sha == nil) || (conv == "go") != (goConv == nil) {
				t.Fatalf("openssl: sha256 convention %v, go convention %v", sha, goConv)
			}

			// Offline verification with the library, as any SchemaPin verifier.
			pub, _ := os.ReadFile(pubPEM)
			res, err := skill.VerifyOffline(t.Context(), skill.VerifyInput{Dir: dir, PublicKeyPEM: pub, Domain: "example.com"})
			if err != nil || !res.Valid || string(res.DigestConvention) != conv {
				t.Fatalf("offline verify: %+v %v", res, err)
			}

			// Through the daemon: valid as signed; an edited claim is caught
			// although the signature itself still verifies.
			c, err := client.DialUnix(d.socket)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			resp, err := c.Skills.VerifySkill(t.Context(), &signerv1.VerifySkillRequest{Domain: "example.com", Root: m.Root[:], FileManifest: m.Files, SignatureDocument: raw})
			if err != nil || !resp.GetValid() || resp.GetKeyName() != "skills" {
				t.Fatalf("VerifySkill: %v %v", resp, err)
			}
			var edited map[string]any
			json.Unmarshal(raw, &edited)
			delete(edited, "expires_at")
			editedDoc, _ := json.Marshal(edited)
			if res, err := skill.VerifyOffline(t.Context(), skill.VerifyInput{Dir: dir, SignatureJSON: editedDoc, PublicKeyPEM: pub, Domain: "example.com"}); err != nil || !res.Valid {
				t.Fatalf("upstream-style verification should accept the stripped expiry (that is the hole): %+v %v", res, err)
			}
			_, err = c.Skills.VerifySkill(t.Context(), &signerv1.VerifySkillRequest{Domain: "example.com", Root: m.Root[:], FileManifest: m.Files, SignatureDocument: editedDoc})
			v, ok := errdefs.AsVerification(c.FromStatus(err))
			if !ok || v.Code != "metadata_edited" || !strings.Contains(v.Message, "expires_at") {
				t.Fatalf("edited expires_at not detected: %v", err)
			}
			// The same root signed again by the same key under another
			// name: the edited document is still compared with the
			// signing its signature comes from, not the latest one.
			if _, err := c.Skills.SignSkill(t.Context(), &signerv1.SignSkillRequest{KeyName: "skills", Root: m.Root[:], FileManifest: m.Files,
				Domain: "example.com", SkillName: "renamed-" + conv, DigestConvention: resp.GetDigestConvention()}); err != nil {
				t.Fatal(err)
			}
			_, err = c.Skills.VerifySkill(t.Context(), &signerv1.VerifySkillRequest{Domain: "example.com", Root: m.Root[:], FileManifest: m.Files, SignatureDocument: editedDoc})
			if v, ok := errdefs.AsVerification(c.FromStatus(err)); !ok || v.Code != "metadata_edited" || strings.Contains(v.Message, "skill_name") {
				t.Fatalf("edited document after a second signing of the root: %v (only expires_at was edited)", err)
			}
			// Tampered content fails.
			otherFiles := maps.Clone(m.Files)
			otherFiles["SKILL.md"] = fmt.Sprintf("sha256:%x", sha256.Sum256([]byte("other content")))
			other, err := skill.ComputeRoot(otherFiles)
			if err != nil {
				t.Fatal(err)
			}
			_, err = c.Skills.VerifySkill(t.Context(), &signerv1.VerifySkillRequest{Domain: "example.com", Root: other[:], FileManifest: otherFiles, SignatureDocument: raw})
			if _, ok := errdefs.AsVerification(c.FromStatus(err)); !ok {
				t.Fatalf("other root accepted: %v", err)
			}
			// Another domain's claim fails (domain_mismatch).
			_, err = c.Skills.VerifySkill(t.Context(), &signerv1.VerifySkillRequest{Domain: "evil.example", Root: m.Root[:], FileManifest: m.Files, SignatureDocument: raw})
			if v, ok := errdefs.AsVerification(c.FromStatus(err)); !ok || v.Code != "domain_mismatch" {
				t.Fatalf("domain mismatch: %v", err)
			}
		})
	}

	t.Run("wrong algorithm key", func(t *testing.T) {
		r := signctl(t, d, "skill", "sign", makeSkill(t), "--key", "pkgs", "--domain", "example.com")
		if r.code != 2 || !strings.Contains(r.stderr, "ecdsa-p256") {
			t.Fatalf("exit %d %s", r.code, r.stderr)
		}
	})
	t.Run("exports", func(t *testing.T) {
		var disc map[string]any
		if err := json.Unmarshal([]byte(mustSignctl(t, d, "skill", "discovery", "--key", "skills", "--developer-name", "Example").stdout), &disc); err != nil {
			t.Fatal(err)
		}
		pub, _ := os.ReadFile(pubPEM)
		if strings.TrimSpace(disc["public_key_pem"].(string)) != strings.TrimSpace(string(pub)) || disc["developer_name"] != "Example" {
			t.Fatalf("discovery: %v", disc)
		}
		txt := strings.TrimSpace(mustSignctl(t, d, "skill", "dns-txt", "--key", "skills").stdout)
		rec, err := skill.ParseDNSTXT(txt)
		fp, _ := skill.FingerprintPEM(pub)
		if err != nil || !rec.Matches(fp) {
			t.Fatalf("dns-txt %q: %v", txt, err)
		}
		var rev map[string]any
		if err := json.Unmarshal([]byte(mustSignctl(t, d, "skill", "revocation", "--domain", "example.com").stdout), &rev); err != nil || rev["domain"] != "example.com" {
			t.Fatalf("revocation: %v %v", rev, err)
		}
	})
}

// TestSkillVerifyCLI: the signctl verbs on a skill signed through the HSM,
// offline with the public key and online through the daemon.
func TestSkillVerifyCLI(t *testing.T) {
	d := startDaemon(t)
	mustSignctl(t, d, "key", "create", "skills", "--algorithm", "ecdsa-p256", "--org", "example.com")
	pubPEM := writeFile(t, t.TempDir(), "skills.pub.pem", []byte(mustSignctl(t, d, "key", "public", "skills").stdout))
	dir := makeSkill(t)
	mustSignctl(t, d, "skill", "sign", dir, "--key", "skills", "--domain", "example.com", "--expires-in", "1h")

	off := mustSignctl(t, d, "skill", "verify", dir, "--domain", "example.com", "--public-key", pubPEM, "-o", "json").json(t)
	if off["valid"] != true || off["digest_convention"] != "sha256" {
		t.Fatalf("offline: %v", off)
	}
	on := mustSignctl(t, d, "skill", "verify", dir, "--domain", "example.com", "--online", "-o", "json").json(t)
	if on["valid"] != true || on["key_source"] != "signerd" {
		t.Fatalf("online: %v", on)
	}
	if r := signctl(t, d, "skill", "tampered", dir); r.code != 0 {
		t.Fatalf("tampered on an intact skill: exit %d %s", r.code, r.stdout)
	}
	// A symlink added after signing is outside every SchemaPin signature:
	// both modes still verify, and both name it.
	link := filepath.Join(dir, "helper.py")
	if err := os.Symlink("/etc/passwd", link); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{{"--public-key", pubPEM}, {"--online"}} {
		r := mustSignctl(t, d, append([]string{"skill", "verify", dir, "--domain", "example.com", "-o", "json"}, args...)...).json(t)
		if r["valid"] != true || fmt.Sprint(r["unsigned_entries"]) != "[helper.py]" || !strings.Contains(fmt.Sprint(r["warnings"]), "unsigned_entries") {
			t.Fatalf("verify %v with a symlink added: %v", args, r)
		}
	}
	if err := os.Remove(link); err != nil {
		t.Fatal(err)
	}

	// Strip expires_at: upstream verifiers accept it, signerd does not.
	sigPath := filepath.Join(dir, ".schemapin.sig")
	raw, _ := os.ReadFile(sigPath)
	var doc map[string]any
	json.Unmarshal(raw, &doc)
	delete(doc, "expires_at")
	edited, _ := json.MarshalIndent(doc, "", "  ")
	os.WriteFile(sigPath, edited, 0o644)
	if r := signctl(t, d, "skill", "verify", dir, "--domain", "example.com", "--public-key", pubPEM); r.code != 0 {
		t.Fatalf("offline verification cannot see the edit (upstream's hole), yet it failed: %d %s", r.code, r.stderr)
	}
	r := signctl(t, d, "skill", "verify", dir, "--domain", "example.com", "--online", "-o", "json")
	if r.code != 1 || r.json(t)["error_code"] != "metadata_edited" {
		t.Fatalf("online verification missed the edit: exit %d %s", r.code, r.stdout)
	}
	os.WriteFile(sigPath, raw, 0o644)

	// Modify a file: both fail, and tampered names it.
	writeFile(t, dir, "SKILL.md", []byte("---\nname: hello-skill\n---\n# Evil\n"))
	for _, args := range [][]string{{"--public-key", pubPEM}, {"--online"}} {
		if r := signctl(t, d, append([]string{"skill", "verify", dir, "--domain", "example.com"}, args...)...); r.code != 1 {
			t.Fatalf("modified skill %v: exit %d", args, r.code)
		}
	}
	// The failure's result carries the signature's domain online as
	// offline (CONTRACT.md's shape).
	for _, args := range [][]string{{"--public-key", pubPEM}, {"--online"}} {
		r := signctl(t, d, append([]string{"skill", "verify", dir, "--domain", "example.com", "-o", "json"}, args...)...)
		if j := r.json(t); r.code != 1 || j["valid"] != false || j["domain"] != "example.com" {
			t.Fatalf("modified skill %v, -o json: exit %d %v", args, r.code, j)
		}
	}
	if r := signctl(t, d, "skill", "tampered", dir, "-o", "json"); r.code != 1 || !strings.Contains(r.stdout, "SKILL.md") {
		t.Fatalf("tampered: exit %d %s", r.code, r.stdout)
	}
}
