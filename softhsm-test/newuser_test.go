package softhsmtest

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestNewUserOutputs: what a new user reads, through the real binaries.
// Both signature files are public (0644); online and offline skill
// verification word a tampered folder alike, with the `signctl skill
// tampered` hint; counts are in the right number ("1 checkpoint").
func TestNewUserOutputs(t *testing.T) {
	d := startDaemon(t)
	mustSignctl(t, d, "key", "create", "release", "--algorithm", "ed25519")
	mustSignctl(t, d, "key", "create", "skills", "--algorithm", "ecdsa-p256", "--org", "example.com")
	pkg := writeFile(t, t.TempDir(), "libworkflow.so", []byte("\x7fELF new user"))
	mustSignctl(t, d, "sign", pkg, "--key", "release")
	dir := makeSkill(t)
	mustSignctl(t, d, "skill", "sign", dir, "--key", "skills", "--domain", "example.com")

	for _, p := range []string{pkg + ".sig", filepath.Join(dir, ".schemapin.sig")} {
		st, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if st.Mode().Perm() != 0o644 {
			t.Errorf("%s is %v, want 0644: a signature is public", filepath.Base(p), st.Mode().Perm())
		}
	}

	// However many checkpoints signerd has signed so far (one at start-up
	// and at each stop), the count is in the right number; with exactly
	// one, "1 checkpoint".
	r := mustSignctl(t, d, "audit", "verify")
	n := mustSignctl(t, d, "audit", "verify", "-o", "json").json(t)["checkpoints"]
	want := fmt.Sprintf("\n%v checkpoints by audit key ", n)
	if n == float64(1) {
		want = "\n1 checkpoint by audit key "
	}
	if !strings.Contains(r.stdout, want) {
		t.Errorf("audit verify (%v checkpoints):\n%s", n, r.stdout)
	}
	t.Logf("audit verify, checkpoints=%v: %q", n, want)

	writeFile(t, dir, "SKILL.md", []byte("---\nname: hello-skill\n---\n# Edited\n"))
	pub := writeFile(t, t.TempDir(), "skills.pub.pem", []byte(mustSignctl(t, d, "key", "public", "skills").stdout))
	off := signctl(t, d, "skill", "verify", dir, "--domain", "example.com", "--public-key", pub)
	on := signctl(t, d, "skill", "verify", dir, "--domain", "example.com", "--online")
	want = "FAILED: " + dir + ": signature_invalid: Signature verification failed\n" +
		"  modified: SKILL.md\n" +
		"  the folder's content differs from its signed manifest; list the changes with: signctl skill tampered " + dir + "\n"
	for name, r := range map[string]result{"offline": off, "online": on} {
		if r.code != 1 || r.stderr != want {
			t.Errorf("%s: exit %d, stderr\n%s\nwant\n%s", name, r.code, r.stderr, want)
		}
	}
}
