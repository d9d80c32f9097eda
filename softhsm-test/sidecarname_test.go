package softhsmtest

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/signerd/signerd/client"
)

// TestCloacinaSidecarName: Cloacina names the .sig of a file without an
// extension "pkg..sig" (Rust's with_extension). signctl verify, online
// and offline, and the Go client find it when pkg.sig is absent; an empty
// one there is refused as one at pkg.sig is, which shows it was read.
func TestCloacinaSidecarName(t *testing.T) {
	d := startDaemon(t)
	dir := t.TempDir()
	mustSignctl(t, d, "key", "create", "release", "--algorithm", "ed25519")
	mustSignctl(t, d, "trust", "add", "--org", "acme", "--key", "release")
	pub := writeFile(t, dir, "release.pub.pem", []byte(mustSignctl(t, d, "key", "public", "release").stdout))
	pkg := writeFile(t, dir, "pkg", []byte("a package without an extension"))
	mustSignctl(t, d, "sign", pkg, "--key", "release", "--out", pkg+"..sig")
	if _, err := os.Stat(pkg + ".sig"); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("pkg.sig exists: %v", err)
	}
	// Offline there are no records to fall back to: only the file can verify.
	for _, args := range [][]string{{"--org", "acme"}, {"--trust-key", pub}} {
		if r := signctl(t, d, append([]string{"verify", pkg}, args...)...); r.code != 0 {
			t.Fatalf("verify %v with the signature at pkg..sig: exit %d\n%s%s", args, r.code, r.stdout, r.stderr)
		}
	}
	c, err := client.DialUnix(d.socket)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	vf, err := c.OpenVerified(ctx, pkg, "acme")
	if err != nil {
		t.Fatalf("OpenVerified with the signature at pkg..sig: %v", err)
	}
	vf.Close()

	valid := mustRead(t, pkg+"..sig")
	if err := os.WriteFile(pkg+"..sig", nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if r := signctl(t, d, "verify", pkg, "--org", "acme"); r.code != 2 || !strings.Contains(r.stderr+r.stdout, "MALFORMED_SIGNATURE: "+pkg+"..sig: ") {
		t.Fatalf("an empty pkg..sig: exit %d, want 2 MALFORMED_SIGNATURE naming the file\n%s%s", r.code, r.stdout, r.stderr)
	}
	if _, err := c.OpenVerified(ctx, pkg, "acme"); !errors.Is(err, client.ErrMalformedSignature) {
		t.Fatalf("OpenVerified with an empty pkg..sig: %v, want ErrMalformedSignature", err)
	}
	// pkg.sig, when there, is the one read (the empty pkg..sig is not).
	if err := os.WriteFile(filepath.Join(dir, "pkg.sig"), valid, 0o644); err != nil {
		t.Fatal(err)
	}
	if r := signctl(t, d, "verify", pkg, "--trust-key", pub); r.code != 0 {
		t.Fatalf("pkg.sig beside an empty pkg..sig: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
}
