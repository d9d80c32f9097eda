package softhsmtest

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
)

// TestLargeSkill: a skill of 100,000 (tiny) files signs through the daemon
// and verifies online and offline; the daemon's peak resident memory stays
// under the 512 MiB bound. The manifest (about 9 MB) no longer travels as
// one request, which the 1 MiB request limit refused beyond about 12,000
// files ("received message larger than max"): signctl streams it
// (SignSkillStream) in 48 KiB pieces.
func TestLargeSkill(t *testing.T) {
	const files = 100_000
	d := startDaemon(t)
	mustSignctl(t, d, "key", "create", "skills", "--algorithm", "ecdsa-p256", "--org", "example.com")
	pubPEM := writeFile(t, t.TempDir(), "skills.pub.pem", []byte(mustSignctl(t, d, "key", "public", "skills").stdout))

	dir := filepath.Join(t.TempDir(), "big-skill")
	for i := range files / 1000 {
		sub := filepath.Join(dir, fmt.Sprintf("d%03d", i))
		if err := os.MkdirAll(sub, 0o755); err != nil {
			t.Fatal(err)
		}
		for j := range 1000 {
			if err := os.WriteFile(filepath.Join(sub, fmt.Sprintf("f%04d.txt", j)), []byte(fmt.Sprint(i, j)), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	writeFile(t, dir, "SKILL.md", []byte("---\nname: big-skill\ndescription: many files\n---\n"))

	// signctl's default 30 s deadline is for one call of normal size; this
	// one streams a 9 MB manifest, on a machine that may be loaded: give it
	// a bound on a hang, not a speed to meet.
	const hang = "10m"
	r := mustSignctl(t, d, "skill", "sign", dir, "--key", "skills", "--domain", "example.com", "-o", "json", "--timeout", hang).json(t)
	if r["files"] != float64(files+1) {
		t.Fatalf("skill sign: %v", r)
	}
	if on := mustSignctl(t, d, "skill", "verify", dir, "--domain", "example.com", "--online", "-o", "json", "--timeout", hang).json(t); on["valid"] != true {
		t.Fatalf("online verify: %v", on)
	}
	if off := mustSignctl(t, nil, "skill", "verify", dir, "--domain", "example.com", "--public-key", pubPEM, "-o", "json").json(t); off["valid"] != true {
		t.Fatalf("offline verify: %v", off)
	}
	// A file changed after signing is caught.
	writeFile(t, filepath.Join(dir, "d042"), "f0042.txt", []byte("changed"))
	if r := signctl(t, d, "skill", "verify", dir, "--domain", "example.com", "--online", "--timeout", hang); r.code != 1 {
		t.Fatalf("verify of a changed skill: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	peak := d.peakRSSKiB(t)
	t.Logf("%d-file skill signed and verified; daemon peak RSS %d MiB", files+1, peak>>10)
	if peak > 512<<10 {
		t.Fatalf("daemon peak resident memory %d MiB, want under 512 MiB", peak>>10)
	}
}
