package softhsmtest

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestBadInput: each mistake gets the contract's exit code, a message naming
// the problem, and leaves no .sig or record behind.
func TestBadInput(t *testing.T) {
	d := startDaemon(t)
	dir := t.TempDir()
	mustSignctl(t, d, "key", "create", "release")
	mustSignctl(t, d, "key", "create", "skills", "--algorithm", "ecdsa-p256")
	mustSignctl(t, d, "trust", "add", "--org", "acme", "--key", "release")
	pkg := writeFile(t, dir, "pkg.so", []byte("package"))
	notPEM := writeFile(t, dir, "not.pem", []byte("hello"))
	ecPEM := writeFile(t, dir, "ec.pub.pem", []byte(mustSignctl(t, d, "key", "public", "skills").stdout))
	n := 0
	sigOf := func(content string) string {
		n++
		return writeFile(t, dir, fmt.Sprintf("doc%d.json", n), []byte(content))
	}
	goodPub := writeFile(t, dir, "release.pub.pem", []byte(mustSignctl(t, d, "key", "public", "release").stdout))

	tests := []struct {
		name     string
		daemon   bool
		args     []string
		code     int
		contains string
	}{
		{"unknown key", true, []string{"sign", pkg, "--key", "nope"}, 2, "does not exist"},
		{"wrong algorithm key", true, []string{"sign", pkg, "--key", "skills"}, 2, "ed25519"},
		{"missing file", true, []string{"sign", filepath.Join(dir, "missing.so"), "--key", "release"}, 2, "missing.so"},
		{"directory", true, []string{"sign", dir, "--key", "release"}, 2, "not a regular file"},
		{"no key flag", true, []string{"sign", pkg}, 2, "--key"},
		{"no file", true, []string{"sign", "--key", "release"}, 2, "FILE"},
		{"bad algorithm", true, []string{"key", "create", "x", "--algorithm", "rsa"}, 2, "ed25519"},
		{"duplicate key", true, []string{"key", "create", "release"}, 2, "already exists"},
		{"bad key name", true, []string{"key", "create", "a/b"}, 2, "invalid"},
		{"not a PEM", true, []string{"trust", "add", "--org", "acme", "--public-key", notPEM}, 2, "PEM"},
		{"missing PEM file", true, []string{"trust", "add", "--org", "acme", "--public-key", filepath.Join(dir, "nope.pem")}, 2, "nope.pem"},
		{"ecdsa PEM offline", true, []string{"verify", pkg, "--trust-key", ecPEM}, 2, "Ed25519"},
		{"remove untrusted", true, []string{"trust", "remove", "--org", "acme", "--fingerprint", strings.Repeat("0", 64)}, 2, "does not trust"},
		{"remove from unknown org", true, []string{"trust", "remove", "--org", "nobody", "--fingerprint", strings.Repeat("0", 64)}, 2, "not configured"},
		{"revoke grant of unknown org", true, []string{"trust", "revoke-grant", "--org", "nobody", "--child", "acme"}, 2, "not configured"},
		{"verify needs a mode", true, []string{"verify", pkg}, 2, "--org"},
		{"verify both modes", true, []string{"verify", pkg, "--org", "acme", "--trust-key", goodPub}, 2, "exactly one"},
		{"missing signature file", true, []string{"verify", pkg, "--org", "acme", "--signature", filepath.Join(dir, "none.sig")}, 2, "none.sig"},
		{"truncated sig", true, []string{"verify", pkg, "--org", "acme", "--signature", sigOf(`{"version": 1, "algorithm": "ed2`)}, 2, "MALFORMED_SIGNATURE"},
		{"non-base64 sig", true, []string{"verify", pkg, "--org", "acme", "--signature", sigOf(`{"version":1,"algorithm":"ed25519","package_hash":"` + strings.Repeat("a", 64) + `","key_fingerprint":"` + strings.Repeat("b", 64) + `","signature":"***","signed_at":"2026-01-28T12:00:00+00:00"}`)}, 2, "base64"},
		{"wrong length sig", true, []string{"verify", pkg, "--trust-key", goodPub, "--signature", sigOf(`{"version":1,"algorithm":"ed25519","package_hash":"` + strings.Repeat("a", 64) + `","key_fingerprint":"` + strings.Repeat("b", 64) + `","signature":"AAAA","signed_at":"2026-01-28T12:00:00+00:00"}`)}, 2, "bytes"},
		{"bad output format", true, []string{"key", "list", "-o", "yaml"}, 2, "text or json"},
		{"unknown flag", true, []string{"key", "list", "--bogus"}, 2, "bogus"},
		{"daemon not running", false, []string{"key", "list"}, 3, "cannot reach signerd"},
		{"daemon not running, sign", false, []string{"sign", pkg, "--key", "release"}, 3, "cannot reach signerd"},
		{"daemon not running, online verify", false, []string{"verify", pkg, "--org", "acme"}, 3, "cannot reach signerd"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dd := d
			if !tt.daemon {
				dd = nil
			}
			r := signctl(t, dd, tt.args...)
			if r.code != tt.code {
				t.Fatalf("exit %d, want %d\nstdout: %s\nstderr: %s", r.code, tt.code, r.stdout, r.stderr)
			}
			if !strings.Contains(r.stdout+r.stderr, tt.contains) {
				t.Fatalf("output does not mention %q:\n%s%s", tt.contains, r.stdout, r.stderr)
			}
		})
	}
	// A refused trust removal names the org and the key once.
	fp := strings.Repeat("0", 64)
	r := signctl(t, d, "trust", "remove", "--org", "acme", "--fingerprint", fp)
	if out := r.stdout + r.stderr; strings.Count(out, `"acme"`) != 1 || strings.Count(out, fp) != 1 {
		t.Errorf("trust remove of an untrusted key should name the org and key once:\n%s", out)
	}
	// Nothing was signed: no .sig files, no leftover temporaries.
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		if strings.HasSuffix(e.Name(), ".sig") || strings.Contains(e.Name(), ".tmp-") {
			t.Errorf("left behind: %s", e.Name())
		}
	}
	// An unsigned package stays unsigned in the daemon's records.
	if r := signctl(t, d, "verify", pkg, "--org", "acme", "-o", "json"); r.json(t)["reason"] != "SIGNATURE_NOT_FOUND" {
		t.Fatalf("a failed sign left a record: %s", r.stdout)
	}
	if _, err := os.Stat(pkg + ".sig"); !os.IsNotExist(err) {
		t.Fatalf("pkg.so.sig exists after failed signs")
	}
}

func TestHelpOnEveryCommand(t *testing.T) {
	for _, args := range [][]string{
		{"--help"}, {"key", "--help"}, {"key", "create", "--help"}, {"key", "list", "--help"}, {"key", "public", "--help"},
		{"trust", "--help"}, {"trust", "add", "--help"}, {"trust", "remove", "--help"}, {"trust", "grant", "--help"},
		{"trust", "list", "--help"}, {"policy", "set", "--help"}, {"sign", "--help"}, {"verify", "--help"},
	} {
		r := signctl(t, nil, args...)
		if r.code != 0 || !strings.Contains(r.stdout, "Usage:") {
			t.Errorf("signctl %v: exit %d\n%s%s", args, r.code, r.stdout, r.stderr)
		}
	}
	if _, err := os.Stat(bins.signerd); err != nil {
		t.Fatal(err)
	}
}
