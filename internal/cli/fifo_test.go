//go:build unix

package cli

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestVerifyRefusesFIFOs: a FIFO where signctl reads a file it was named
// or looks for (FILE.sig, Cloacina's FILE..sig, --signature, --trust-key)
// is refused as bad input at once; before, signctl waited for a writer
// forever, deaf to SIGTERM.
func TestVerifyRefusesFIFOs(t *testing.T) {
	dir := t.TempDir()
	pkg := filepath.Join(dir, "pkg")
	if err := os.WriteFile(pkg, []byte("a package"), 0o644); err != nil {
		t.Fatal(err)
	}
	fifo := func(name string) string {
		p := filepath.Join(dir, name)
		if err := syscall.Mkfifo(p, 0o644); err != nil {
			t.Skip(err)
		}
		return p
	}
	pub := fifo("release.pub.pem")
	sig := fifo("other.sig")
	regular := filepath.Join(dir, "regular.pem") // read after the signature, if at all
	if err := os.WriteFile(regular, []byte("not a key"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name  string
		setup func()
		args  []string
		names string
	}{
		{"--trust-key", nil, []string{"verify", pkg, "--trust-key", pub}, pub},
		{"--signature", nil, []string{"verify", pkg, "--trust-key", regular, "--signature", sig}, sig},
		{"FILE..sig", func() { fifo("pkg..sig") }, []string{"verify", pkg, "--trust-key", regular}, pkg + "..sig"},
		{"FILE.sig", func() { fifo("pkg.sig") }, []string{"verify", pkg, "--trust-key", regular}, pkg + ".sig"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.setup != nil {
				tc.setup()
			}
			done := make(chan skillCLIResult, 1)
			go func() { done <- runSignctl(t, tc.args...) }()
			select {
			case r := <-done:
				if r.code != ExitUsage || !strings.Contains(r.stderr, tc.names+" is not a regular file") {
					t.Fatalf("exit %d, want 2 naming a file that is not a regular one\nstdout: %s\nstderr: %s", r.code, r.stdout, r.stderr)
				}
			case <-time.After(time.Minute):
				t.Fatal("signctl is still waiting on the FIFO after a minute")
			}
		})
	}
}
