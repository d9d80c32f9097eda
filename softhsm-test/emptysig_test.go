package softhsmtest

import (
	"crypto/sha256"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/signerd/signerd/client"
)

// TestEmptySignatureFile: a zero-byte signature file is MALFORMED_SIGNATURE
// online as offline, never "no document" that falls back to the daemon's
// records of the same digest.
func TestEmptySignatureFile(t *testing.T) {
	d := startDaemon(t)
	dir := t.TempDir()
	mustSignctl(t, d, "key", "create", "release", "--org", "acme")
	mustSignctl(t, d, "trust", "add", "--org", "acme", "--key", "release")
	pub := writeFile(t, dir, "release.pub.pem", []byte(mustSignctl(t, d, "key", "public", "release").stdout))
	pkg := writeFile(t, dir, "pkg.so", []byte("recorded package"))
	mustSignctl(t, d, "sign", pkg, "--key", "release") // the daemon records it
	empty := writeFile(t, dir, "empty.sig", nil)
	if err := os.WriteFile(pkg+".sig", nil, 0o644); err != nil { // zero-byte sidecar
		t.Fatal(err)
	}
	for _, args := range [][]string{
		{"--org", "acme", "--signature", empty},
		{"--org", "acme"},
		{"--trust-key", pub, "--signature", empty},
		{"--trust-key", pub},
	} {
		r := signctl(t, d, append([]string{"verify", pkg, "-o", "json"}, args...)...)
		if r.code != 2 || r.json(t)["reason"] != "MALFORMED_SIGNATURE" || r.json(t)["verified"] != false {
			t.Errorf("verify %v: exit %d\n%s%s", args, r.code, r.stdout, r.stderr)
		}
	}
	// A loader using the public client: OpenVerified reads the empty
	// sidecar, Verify is handed an empty document; both refuse.
	c := relDial(t, d)
	if vf, err := c.OpenVerified(t.Context(), pkg, "acme"); !errors.Is(err, client.ErrMalformedSignature) {
		if vf != nil {
			vf.Close()
		}
		t.Errorf("OpenVerified with an empty sidecar: %v", err)
	}
	digest := sha256.Sum256([]byte("recorded package"))
	if _, err := c.Verify(t.Context(), "acme", digest, []byte{}); !errors.Is(err, client.ErrMalformedSignature) {
		t.Errorf("Verify with an empty document: %v", err)
	}

	// Without the sidecar the records still decide.
	if err := os.Remove(pkg + ".sig"); err != nil {
		t.Fatal(err)
	}
	if r := signctl(t, d, "verify", filepath.Clean(pkg), "--org", "acme"); r.code != 0 {
		t.Fatalf("verify from records: exit %d %s", r.code, r.stderr)
	}
}
