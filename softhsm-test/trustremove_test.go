package softhsmtest

import (
	"strings"
	"testing"
)

// TestTrustRemoveWithGrant: removing an org's direct trust in a key that the
// org still accepts through a grant says so, naming the grant(s), in text,
// JSON and the audit log; the signature keeps verifying, exactly as the
// answer says. Once no grant carries the key, it is gone (KEY_REVOKED).
func TestTrustRemoveWithGrant(t *testing.T) {
	d := startDaemon(t)
	dir := t.TempDir()
	mustSignctl(t, d, "key", "create", "release")
	pkg := writeFile(t, dir, "a.so", []byte("package a"))
	mustSignctl(t, d, "sign", pkg, "--key", "release")

	for _, org := range []string{"B", "C", "D"} {
		mustSignctl(t, d, "trust", "add", "--org", org, "--key", "release")
	}
	fpRelease := signerFingerprint(t, d, pkg, "B")
	mustSignctl(t, d, "trust", "grant", "--org", "B", "--child", "C")
	mustSignctl(t, d, "trust", "grant", "--org", "B", "--child", "D")

	// B drops the key, but C and D still carry it to B.
	r := mustSignctl(t, d, "trust", "remove", "--org", "B", "--fingerprint", fpRelease)
	want := "org B no longer trusts " + fpRelease + " directly, but still accepts it through its grants of orgs C, D"
	if !strings.Contains(r.stdout, want) {
		t.Fatalf("trust remove says:\n%s\nwant %q", r.stdout, want)
	}
	mustSignctl(t, d, "verify", pkg, "--org", "B") // what the answer said: still accepted

	// D drops it: D now refuses it, and only the grant of C carries it to B.
	r = mustSignctl(t, d, "trust", "remove", "--org", "D", "--fingerprint", fpRelease, "-o", "json")
	if j := r.json(t); j["still_trusted"] != false || len(j["still_trusted_via_grants"].([]any)) != 0 {
		t.Fatalf("trust remove -o json for D: %s", r.stdout)
	}
	// Removing B's (already removed) direct trust again names the grant
	// that still carries the key.
	r = signctl(t, d, "trust", "remove", "--org", "B", "--fingerprint", fpRelease)
	if r.code != 2 || !strings.Contains(r.stderr, "accepts it through its grant of org C") {
		t.Fatalf("second removal from B: exit %d %s", r.code, r.stderr)
	}
	mustSignctl(t, d, "verify", pkg, "--org", "B")

	// C drops it too: now nothing carries it to B.
	mustSignctl(t, d, "trust", "remove", "--org", "C", "--fingerprint", fpRelease)
	if r := signctl(t, d, "verify", pkg, "--org", "B", "-o", "json"); r.code != 1 || r.json(t)["reason"] != "KEY_REVOKED" {
		t.Fatalf("verify for B after every grant lost the key: exit %d %s", r.code, r.stdout)
	}

	// A removal a grant puts back, with its JSON, from a fresh start.
	mustSignctl(t, d, "trust", "add", "--org", "C", "--key", "release")
	mustSignctl(t, d, "trust", "add", "--org", "B", "--key", "release")
	r = mustSignctl(t, d, "trust", "remove", "--org", "B", "--fingerprint", fpRelease, "-o", "json")
	j := r.json(t)
	if via, _ := j["still_trusted_via_grants"].([]any); j["still_trusted"] != true || len(via) != 1 || via[0] != "C" {
		t.Fatalf("trust remove -o json: %s", r.stdout)
	}

	var details []string
	for _, rec := range auditList(t, d) {
		if rec.Operation == "trust.remove" && rec.Org == "B" && rec.Outcome == "ok" {
			details = append(details, rec.Detail)
		}
	}
	if len(details) != 2 || details[0] != "fingerprint="+fpRelease+" still_trusted_via=C,D" || details[1] != "fingerprint="+fpRelease+" still_trusted_via=C" {
		t.Fatalf("audited removals from B: %q", details)
	}
}

// signerFingerprint is the fingerprint of pkg's signer, from an org's
// verification.
func signerFingerprint(t *testing.T, d *daemon, pkg, org string) string {
	t.Helper()
	fp, _ := mustSignctl(t, d, "verify", pkg, "--org", org, "-o", "json").json(t)["signer_fingerprint"].(string)
	if fp == "" {
		t.Fatal("verify names no signer fingerprint")
	}
	return fp
}
