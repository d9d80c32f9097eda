package softhsmtest

import (
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/signerd/signerd/internal/skill"
)

// TestKeyRotation: a new version signs, old signatures still verify, the
// records name their versions, trust follows the rotation.
func TestKeyRotation(t *testing.T) {
	d := startDaemon(t)
	dir := t.TempDir()
	mustSignctl(t, d, "key", "create", "release")
	mustSignctl(t, d, "trust", "add", "--org", "acme", "--key", "release")
	a := writeFile(t, dir, "a.so", []byte("built before rotation"))
	if v := mustSignctl(t, d, "sign", a, "--key", "release", "-o", "json").json(t); v["key_version"].(float64) != 1 {
		t.Fatalf("sign before rotation: %v", v)
	}
	r := mustSignctl(t, d, "key", "rotate", "release", "-o", "json").json(t)
	if r["key"].(map[string]any)["version"].(float64) != 2 || len(r["trust_propagated_to"].([]any)) != 1 {
		t.Fatalf("rotate: %v", r)
	}
	b := writeFile(t, dir, "b.so", []byte("built after rotation"))
	if v := mustSignctl(t, d, "sign", b, "--key", "release", "-o", "json").json(t); v["key_version"].(float64) != 2 {
		t.Fatalf("sign after rotation: %v", v)
	}
	aSig, _ := os.ReadFile(a + ".sig")
	bSig, _ := os.ReadFile(b + ".sig")
	var da, db map[string]any
	json.Unmarshal(aSig, &da)
	json.Unmarshal(bSig, &db)
	if da["key_fingerprint"] == db["key_fingerprint"] {
		t.Fatal("rotation did not change the signing key")
	}
	mustSignctl(t, d, "verify", a, "--org", "acme")
	mustSignctl(t, d, "verify", b, "--org", "acme")
}

// TestKeyRevocation covers each reason's semantics.
func TestKeyRevocation(t *testing.T) {
	for _, tt := range []struct {
		reason    string
		oldPasses bool
	}{
		{"key_compromise", false},
		{"superseded", true},
		{"cessation_of_operation", true},
		{"privilege_withdrawn", true},
	} {
		t.Run(tt.reason, func(t *testing.T) {
			d := startDaemon(t)
			dir := t.TempDir()
			mustSignctl(t, d, "key", "create", "release")
			mustSignctl(t, d, "trust", "add", "--org", "acme", "--key", "release")
			old := writeFile(t, dir, "old.so", []byte("signed before the revocation"))
			mustSignctl(t, d, "sign", old, "--key", "release")
			mustSignctl(t, d, "key", "revoke", "release", "--reason", tt.reason)

			r := signctl(t, d, "sign", writeFile(t, dir, "new.so", []byte("new")), "--key", "release")
			if r.code != 2 || !strings.Contains(r.stderr, "revoked") {
				t.Fatalf("a revoked key signed: exit %d %s", r.code, r.stderr)
			}
			if _, err := os.Stat(filepath.Join(dir, "new.so.sig")); !os.IsNotExist(err) {
				t.Fatal("a .sig was written for a refused signature")
			}
			r = signctl(t, d, "verify", old, "--org", "acme", "-o", "json")
			if tt.oldPasses {
				if r.code != 0 {
					t.Fatalf("%s: an earlier signature should stay valid: exit %d %s", tt.reason, r.code, r.stdout)
				}
				return
			}
			if r.code != 1 || r.json(t)["reason"] != "KEY_REVOKED" {
				t.Fatalf("%s: exit %d %s", tt.reason, r.code, r.stdout)
			}
		})
	}
}

// TestKeyImport: Cloacina's seed and SchemaPin's P-256 key keep their
// fingerprints in the HSM, sign exactly as before, and cannot be read out.
func TestKeyImport(t *testing.T) {
	d := startDaemon(t)
	dir := t.TempDir()
	for _, f := range []string{"release.seed.bin", "libworkflow.so", "libworkflow.so.sig"} {
		copyFixture(t, dir, f)
	}
	k := mustSignctl(t, d, "key", "import", "cloacina-release", "--algorithm", "ed25519", "--private-key", filepath.Join(dir, "release.seed.bin"), "-o", "json").json(t)
	if k["fingerprint"] != "3097e2dee2cb4a34b53840cdb705aed71067c36f68db0e0f559c3f3fa043315f" {
		t.Fatalf("imported fingerprint %v", k["fingerprint"])
	}
	requireSignOnly(t, d, k)
	// Ed25519 is deterministic: the HSM reproduces the fixture's signature.
	pkg := filepath.Join(dir, "libworkflow.so")
	fixture, _ := os.ReadFile(pkg + ".sig")
	mustSignctl(t, d, "sign", pkg, "--key", "cloacina-release", "--out", filepath.Join(dir, "ours.sig"))
	ours, _ := os.ReadFile(filepath.Join(dir, "ours.sig"))
	var a, b map[string]any
	json.Unmarshal(fixture, &a)
	json.Unmarshal(ours, &b)
	if a["signature"] != b["signature"] || a["key_fingerprint"] != b["key_fingerprint"] {
		t.Fatalf("imported key signs differently:\n%s\n%s", fixture, ours)
	}
	mustSignctl(t, d, "trust", "add", "--org", "acme", "--key", "cloacina-release")
	mustSignctl(t, d, "verify", pkg, "--org", "acme") // the fixture's own .sig

	keysDir := filepath.Join("testdata", "schemapin", "keys")
	for _, form := range []string{"priv_pkcs8.pem", "priv_sec1.pem"} {
		pemBytes, err := os.ReadFile(filepath.Join(keysDir, form))
		if err != nil {
			t.Fatal(err)
		}
		name := "schemapin-" + strings.TrimSuffix(strings.TrimPrefix(form, "priv_"), ".pem")
		if form == "priv_sec1.pem" {
			// The same key twice is refused: one key, one name.
			r := signctl(t, d, "key", "import", name, "--algorithm", "ecdsa-p256", "--private-key", writeFile(t, dir, form, pemBytes))
			if r.code != 2 || !strings.Contains(r.stderr, "already") {
				t.Fatalf("duplicate import: exit %d %s", r.code, r.stderr)
			}
			continue
		}
		k := mustSignctl(t, d, "key", "import", name, "--algorithm", "ecdsa-p256", "--private-key", writeFile(t, dir, form, pemBytes), "--org", "example.com", "-o", "json").json(t)
		pub, _ := os.ReadFile(filepath.Join(keysDir, "pub.pem"))
		fp, _ := skill.FingerprintPEM(pub)
		if "sha256:"+k["fingerprint"].(string) != fp {
			t.Fatalf("SchemaPin fingerprint %v, want %s", k["fingerprint"], fp)
		}
		id, _ := hex.DecodeString(k["versions"].([]any)[0].(map[string]any)["cka_id"].(string))
		sensitive, extractable, _, _ := d.tok.PrivateKeyAttributes(t, id)
		if !sensitive || extractable || d.tok.ReadPrivateValue(t, id) == nil {
			t.Fatal("imported key is readable from the token")
		}
		requireSignOnly(t, d, k)
	}

	for name, args := range map[string][]string{
		"garbage seed": {"key", "import", "x1", "--algorithm", "ed25519", "--private-key", writeFile(t, dir, "junk", []byte("not a key"))},
		"ec as ed":     {"key", "import", "x2", "--algorithm", "ed25519", "--private-key", filepath.Join(keysDir, "priv_pkcs8.pem")},
		"ed as ec":     {"key", "import", "x3", "--algorithm", "ecdsa-p256", "--private-key", filepath.Join(dir, "release.seed.bin")},
		"missing file": {"key", "import", "x4", "--algorithm", "ed25519", "--private-key", filepath.Join(dir, "nope")},
	} {
		if r := signctl(t, d, args...); r.code != 2 {
			t.Errorf("%s: exit %d %s", name, r.code, r.stderr)
		}
	}
}

// TestSkillKeyRevocationIsPublished: a revoked SchemaPin key appears in the
// discovery and revocation documents.
func TestSkillKeyRevocationIsPublished(t *testing.T) {
	d := startDaemon(t)
	mustSignctl(t, d, "key", "create", "skills", "--algorithm", "ecdsa-p256", "--org", "example.com")
	old := mustSignctl(t, d, "key", "list", "-o", "json").stdout
	mustSignctl(t, d, "key", "rotate", "skills")
	mustSignctl(t, d, "key", "revoke", "skills", "--reason", "superseded")
	var keys []map[string]any
	json.Unmarshal([]byte(old), &keys)
	oldFP := "sha256:" + keys[0]["fingerprint"].(string)
	rev := mustSignctl(t, d, "skill", "revocation", "--domain", "example.com").stdout
	doc, err := skill.ParseRevocation([]byte(rev))
	if err != nil {
		t.Fatal(err)
	}
	if err := skill.CheckRevocation(oldFP, nil, doc); err == nil {
		t.Fatalf("revocation document does not revoke %s:\n%s", oldFP, rev)
	}
	if r := signctl(t, d, "skill", "discovery", "--key", "skills"); r.code != 2 {
		t.Fatalf("discovery for a fully revoked key: exit %d", r.code)
	}
}
