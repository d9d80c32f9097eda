package softhsmtest

import (
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
)

// TestRevocationEscalation: a key revoked as superseded can later be marked
// key_compromise, which voids the signatures the first revocation kept
// valid, and is audited; any other change of reason is refused, and changes
// neither the key nor what verifies.
func TestRevocationEscalation(t *testing.T) {
	d := startDaemon(t)
	dir := t.TempDir()
	mustSignctl(t, d, "key", "create", "release")
	mustSignctl(t, d, "trust", "add", "--org", "acme", "--key", "release")
	old := writeFile(t, dir, "old.so", []byte("signed before any revocation"))
	mustSignctl(t, d, "sign", old, "--key", "release")
	mustSignctl(t, d, "key", "revoke", "release", "--reason", "superseded")
	mustSignctl(t, d, "verify", old, "--org", "acme") // superseded keeps it

	reasonOf := func() string {
		t.Helper()
		var keys []map[string]any
		if err := json.Unmarshal([]byte(mustSignctl(t, d, "key", "list", "-o", "json").stdout), &keys); err != nil {
			t.Fatal(err)
		}
		for _, k := range keys {
			if k["name"] == "release" {
				return k["versions"].([]any)[0].(map[string]any)["revocation_reason"].(string)
			}
		}
		t.Fatal("key release not listed")
		return ""
	}
	for _, reason := range []string{"superseded", "cessation_of_operation", "privilege_withdrawn"} {
		r := signctl(t, d, "key", "revoke", "release", "--reason", reason)
		if r.code == 0 || !strings.Contains(r.stderr, "already revoked (superseded)") {
			t.Fatalf("revoke again as %s: exit %d\n%s%s", reason, r.code, r.stdout, r.stderr)
		}
		if reason != "superseded" && !strings.Contains(r.stderr, "only be escalated to key_compromise") {
			t.Fatalf("revoke again as %s does not say what is allowed: %s", reason, r.stderr)
		}
		if got := reasonOf(); got != "superseded" {
			t.Fatalf("after a refused change to %s the reason is %q", reason, got)
		}
	}
	mustSignctl(t, d, "verify", old, "--org", "acme")

	// The answer says it escalated, in text and in JSON.
	if out := mustSignctl(t, d, "key", "revoke", "release", "--reason", "key_compromise").stdout; !strings.Contains(out, "escalated key release's revocation from superseded to key_compromise") {
		t.Fatalf("the escalation answered %q", out)
	}
	if got := reasonOf(); got != "key_compromise" {
		t.Fatalf("after escalation the reason is %q", got)
	}
	r := signctl(t, d, "verify", old, "--org", "acme", "-o", "json")
	if r.code != 1 || r.json(t)["reason"] != "KEY_REVOKED" {
		t.Fatalf("a signature made before the revocation still verifies after escalation to key_compromise: exit %d %s", r.code, r.stdout)
	}
	// The record-only path (no .sig beside the file) fails as well.
	bare := filepath.Join(dir, "bare.so")
	auditCopy(t, old, bare)
	if r := signctl(t, d, "verify", bare, "--org", "acme", "-o", "json"); r.code != 1 || r.json(t)["reason"] != "KEY_REVOKED" {
		t.Fatalf("recorded signature after escalation: exit %d %s", r.code, r.stdout)
	}
	// Compromise is final.
	for _, reason := range []string{"key_compromise", "superseded"} {
		if r := signctl(t, d, "key", "revoke", "release", "--reason", reason); r.code == 0 || !strings.Contains(r.stderr, "already revoked (key_compromise)") {
			t.Fatalf("revoke a compromised key as %s: exit %d %s", reason, r.code, r.stderr)
		}
	}

	var revokes []string
	for _, rec := range auditList(t, d) {
		if rec.Operation == "key.revoke" && rec.Key == "release" && rec.Outcome == "ok" {
			revokes = append(revokes, rec.Detail)
		}
	}
	if len(revokes) != 2 || revokes[0] != "reason=superseded" || revokes[1] != "reason=key_compromise escalated_from=superseded" {
		t.Fatalf("audited revocations %q, want the revocation and its escalation", revokes)
	}

	// -o json: escalated_from only on an escalation.
	mustSignctl(t, d, "key", "create", "other")
	for _, tt := range []struct{ reason, from string }{
		{"cessation_of_operation", ""},
		{"key_compromise", "cessation_of_operation"},
	} {
		got, ok := mustSignctl(t, d, "key", "revoke", "other", "--reason", tt.reason, "-o", "json").json(t)["escalated_from"]
		if tt.from == "" && ok || tt.from != "" && got != tt.from {
			t.Fatalf("revoke other as %s: escalated_from %v (present %v), want %q", tt.reason, got, ok, tt.from)
		}
	}
}
