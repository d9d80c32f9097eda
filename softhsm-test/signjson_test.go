package softhsmtest

import (
	"encoding/json"
	"strings"
	"testing"
)

// TestSignRefusalJSON: a file the daemon refuses to sign is reported as
// every command reports a failure: one line on stderr and, with -o json,
// the error object on stdout (for several files, one entry per file, in
// order); the kind is not repeated ("not found: not found").
func TestSignRefusalJSON(t *testing.T) {
	d := startDaemon(t)
	mustSignctl(t, d, "key", "create", "release", "--algorithm", "ed25519")
	dir := t.TempDir()
	a := writeFile(t, dir, "a.so", []byte("a"))
	b := writeFile(t, dir, "b.so", []byte("b"))

	r := signctl(t, d, "sign", a, "--key", "nope", "-o", "json")
	var one map[string]any
	if err := json.Unmarshal([]byte(r.stdout), &one); err != nil || r.code != 2 || one["code"] != float64(2) || one["reason"] != "KEY_NOT_FOUND" {
		t.Fatalf("one file, unknown key: exit %d, stdout %q (%v)", r.code, r.stdout, err)
	}
	if msg, _ := one["message"].(string); strings.Contains(msg, "not found: not found") || !strings.Contains(r.stderr, msg) {
		t.Fatalf("message %q; stderr %q", msg, r.stderr)
	}

	r = signctl(t, d, "sign", a, b, "--key", "nope", "-o", "json")
	var many []map[string]any
	if err := json.Unmarshal([]byte(r.stdout), &many); err != nil || r.code != 2 || len(many) != 2 ||
		many[0]["file"] != a || many[0]["reason"] != "KEY_NOT_FOUND" || many[1]["file"] != b {
		t.Fatalf("two files, unknown key: exit %d, stdout %q (%v)", r.code, r.stdout, err)
	}
	r = signctl(t, d, "sign", a, b, "--key", "release", "-o", "json")
	if err := json.Unmarshal([]byte(r.stdout), &many); err != nil || r.code != 0 || len(many) != 2 || many[0]["key"] != "release" || many[1]["file"] != b {
		t.Fatalf("two files signed: exit %d, stdout %q (%v)", r.code, r.stdout, err)
	}
}
