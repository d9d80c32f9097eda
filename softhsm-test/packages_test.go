package softhsmtest

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
)

// TestPackageSigningEndToEnd is the walk-through in the README: create a
// key in the HSM, trust it, sign, verify online and offline, and check the
// signature and PEM with openssl.
func TestPackageSigningEndToEnd(t *testing.T) {
	d := startDaemon(t)
	dir := t.TempDir()

	r := mustSignctl(t, d, "key", "create", "release", "--algorithm", "ed25519", "--org", "acme", "-o", "json")
	key := r.json(t)
	fp := key["fingerprint"].(string)
	if len(fp) != 64 || key["version"].(float64) != 1 || key["algorithm"] != "ed25519" {
		t.Fatalf("key create: %v", key)
	}
	var list []map[string]any
	if err := json.Unmarshal([]byte(mustSignctl(t, d, "key", "list", "-o", "json").stdout), &list); err != nil || len(list) != 1 || list[0]["name"] != "release" {
		t.Fatalf("key list: %v %v", list, err)
	}

	pubPEM := writeFile(t, dir, "release.pub.pem", []byte(mustSignctl(t, d, "key", "public", "release").stdout))
	if err := openssl(t, "pkey", "-pubin", "-in", pubPEM, "-noout"); err != nil {
		t.Fatal(err)
	}

	mustSignctl(t, d, "trust", "add", "--org", "acme", "--key", "release")
	pkg := writeFile(t, dir, "libworkflow.so", []byte("\x7fELF pretend shared object"))
	mustSignctl(t, d, "sign", pkg, "--key", "release")

	// The .sig is Cloacina's document: openssl verifies its signature over
	// the 32 raw digest bytes.
	sigDoc, err := os.ReadFile(pkg + ".sig")
	if err != nil {
		t.Fatal(err)
	}
	var doc map[string]any
	if err := json.Unmarshal(sigDoc, &doc); err != nil {
		t.Fatal(err)
	}
	content, _ := os.ReadFile(pkg)
	sum := sha256.Sum256(content)
	if doc["package_hash"] != hex.EncodeToString(sum[:]) || doc["key_fingerprint"] != fp || doc["algorithm"] != "ed25519" || doc["version"].(float64) != 1 {
		t.Fatalf(".sig = %s", sigDoc)
	}
	rawSig, err := base64.StdEncoding.DecodeString(doc["signature"].(string))
	if err != nil {
		t.Fatal(err)
	}
	digestFile := writeFile(t, dir, "digest.bin", sum[:])
	sigFile := writeFile(t, dir, "sig.bin", rawSig)
	if err := openssl(t, "pkeyutl", "-verify", "-pubin", "-inkey", pubPEM, "-rawin", "-in", digestFile, "-sigfile", sigFile); err != nil {
		t.Fatalf("openssl rejects signerd's signature: %v", err)
	}

	// Online and offline verification.
	v := mustSignctl(t, d, "verify", pkg, "--org", "acme", "-o", "json").json(t)
	if v["verified"] != true || v["admitted"] != true || v["reason"] != "" || v["signer_fingerprint"] != fp || v["package_hash"] != hex.EncodeToString(sum[:]) {
		t.Fatalf("online verify: %v", v)
	}
	v = mustSignctl(t, d, "verify", pkg, "--trust-key", pubPEM, "-o", "json").json(t)
	if v["verified"] != true {
		t.Fatalf("offline verify: %v", v)
	}
	if r := signctl(t, nil, "verify", pkg, "--trust-key", pubPEM); r.code != 0 {
		t.Fatalf("offline verify needs no daemon: exit %d %s", r.code, r.stderr)
	}

	// Without the .sig, the daemon's records decide.
	os.Rename(pkg+".sig", pkg+".sig.bak")
	v = mustSignctl(t, d, "verify", pkg, "--org", "acme", "-o", "json").json(t)
	if v["verified"] != true || v["signature_source"] != "recorded" {
		t.Fatalf("verify from records: %v", v)
	}
	os.Rename(pkg+".sig.bak", pkg+".sig")

	// A granted parent org trusts the child's key; a grandparent does not.
	mustSignctl(t, d, "trust", "grant", "--org", "platform", "--child", "acme")
	mustSignctl(t, d, "trust", "grant", "--org", "holding", "--child", "platform")
	mustSignctl(t, d, "verify", pkg, "--org", "platform")
	if r := signctl(t, d, "verify", pkg, "--org", "holding", "-o", "json"); r.code != 1 || r.json(t)["reason"] != "UNTRUSTED_SIGNER" {
		t.Fatalf("grant is not transitive: exit %d %s", r.code, r.stdout)
	}
	tl := mustSignctl(t, d, "trust", "list", "--org", "platform", "-o", "json").json(t)
	keys := tl["keys"].([]any)
	if len(keys) != 1 || keys[0].(map[string]any)["via_org"] != "acme" {
		t.Fatalf("trust list: %v", tl)
	}

	// Tampering is caught online and offline.
	tampered := writeFile(t, dir, "tampered.so", append(content, 'x'))
	writeFile(t, dir, "tampered.so.sig", sigDoc)
	for _, args := range [][]string{{"--org", "acme"}, {"--trust-key", pubPEM}} {
		r := signctl(t, d, append([]string{"verify", tampered, "-o", "json"}, args...)...)
		if r.code != 1 || r.json(t)["reason"] != "PACKAGE_TAMPERED" || r.json(t)["admitted"] != false {
			t.Fatalf("tampered %v: exit %d %s", args, r.code, r.stdout)
		}
	}

	// Removing trust makes every signature by the key fail: KEY_REVOKED.
	mustSignctl(t, d, "trust", "remove", "--org", "acme", "--fingerprint", fp)
	if r := signctl(t, d, "verify", pkg, "--org", "acme", "-o", "json"); r.code != 1 || r.json(t)["reason"] != "KEY_REVOKED" {
		t.Fatalf("after trust remove: exit %d %s", r.code, r.stdout)
	}
}

// TestCloacinaFixtures verifies the conformance fixtures through the daemon
// and offline, with the reasons vectors.json gives.
func TestCloacinaFixtures(t *testing.T) {
	d := startDaemon(t)
	dir := t.TempDir()
	for _, f := range []string{"libworkflow.so", "libworkflow_tampered.so", "release.pub.pem", "release.pub.lf.pem", "other.pub.pem",
		"libworkflow.so.sig", "libworkflow.so.other-key.sig", "libworkflow.so.bad-signature.sig", "malformed.sig"} {
		copyFixture(t, dir, f)
	}
	p := func(n string) string { return filepath.Join(dir, n) }
	mustSignctl(t, d, "trust", "add", "--org", "acme", "--public-key", p("release.pub.pem"), "--name", "cloacina-release")

	tests := []struct {
		name   string
		file   string
		sig    string
		code   int
		reason string
	}{
		{"signed", "libworkflow.so", "libworkflow.so.sig", 0, ""},
		{"tampered", "libworkflow_tampered.so", "libworkflow.so.sig", 1, "PACKAGE_TAMPERED"},
		{"other key", "libworkflow.so", "libworkflow.so.other-key.sig", 1, "UNTRUSTED_SIGNER"},
		{"bad signature", "libworkflow.so", "libworkflow.so.bad-signature.sig", 1, "INVALID_SIGNATURE"},
		{"malformed", "libworkflow.so", "malformed.sig", 2, "MALFORMED_SIGNATURE"},
	}
	for _, tt := range tests {
		for _, mode := range [][]string{{"--org", "acme"}, {"--trust-key", p("release.pub.pem")}, {"--trust-key", p("release.pub.lf.pem")}} {
			t.Run(tt.name+" "+mode[0], func(t *testing.T) {
				r := signctl(t, d, append([]string{"verify", p(tt.file), "--signature", p(tt.sig), "-o", "json"}, mode...)...)
				if r.code != tt.code {
					t.Fatalf("exit %d, want %d\n%s%s", r.code, tt.code, r.stdout, r.stderr)
				}
				if got := r.json(t)["reason"]; got != tt.reason {
					t.Fatalf("reason %v, want %q", got, tt.reason)
				}
			})
		}
	}
	// The other key's signature verifies with the other key.
	mustSignctl(t, d, "verify", p("libworkflow.so"), "--signature", p("libworkflow.so.other-key.sig"), "--trust-key", p("other.pub.pem"))
}

// TestPolicy covers unsigned artifacts under each policy.
func TestPolicy(t *testing.T) {
	d := startDaemon(t)
	unsigned := writeFile(t, t.TempDir(), "unsigned.so", []byte("nobody signed me"))
	// acme exists (it trusts a key) and has the default policy.
	mustSignctl(t, d, "key", "create", "release", "--algorithm", "ed25519")
	mustSignctl(t, d, "trust", "add", "--org", "acme", "--key", "release")

	r := signctl(t, d, "verify", unsigned, "--org", "acme", "-o", "json")
	v := r.json(t)
	if r.code != 1 || v["reason"] != "SIGNATURE_NOT_FOUND" || v["admitted"] != true || v["verified"] != false {
		t.Fatalf("unsigned, default policy: exit %d %v", r.code, v)
	}
	mustSignctl(t, d, "policy", "set", "--org", "acme", "--require-signatures=true")
	if p := mustSignctl(t, d, "policy", "get", "--org", "acme", "-o", "json").json(t); p["require_signatures"] != true {
		t.Fatalf("policy get: %v", p)
	}
	r = signctl(t, d, "verify", unsigned, "--org", "acme", "-o", "json")
	v = r.json(t)
	if r.code != 1 || v["reason"] != "SIGNATURE_NOT_FOUND" || v["admitted"] != false {
		t.Fatalf("unsigned, require_signatures: exit %d %v", r.code, v)
	}
	mustSignctl(t, d, "policy", "set", "--org", "acme", "--require-signatures=false")
	if r := signctl(t, d, "verify", unsigned, "--org", "acme", "-o", "json"); r.json(t)["admitted"] != true {
		t.Fatalf("policy back to false: %s", r.stdout)
	}
}

// TestSignManyFiles signs several files in one command.
func TestSignManyFiles(t *testing.T) {
	d := startDaemon(t)
	dir := t.TempDir()
	mustSignctl(t, d, "key", "create", "release")
	mustSignctl(t, d, "trust", "add", "--org", "acme", "--key", "release")
	var files []string
	for i := 0; i < 5; i++ {
		files = append(files, writeFile(t, dir, "pkg"+string(rune('a'+i))+".so", []byte{byte(i)}))
	}
	mustSignctl(t, d, append([]string{"sign", "--key", "release"}, files...)...)
	for _, f := range files {
		mustSignctl(t, d, "verify", f, "--org", "acme")
	}
}
