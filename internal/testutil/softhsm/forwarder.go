package softhsm

import (
	_ "embed"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// forwarderSource is a PKCS#11 module that forwards to SoftHSM2 and changes
// one behaviour at a time (see the comment at its top).
//
//go:embed forwarder/forwarder.c
var forwarderSource []byte

// Forwarder builds the test-only forwarding module with the system C
// compiler into the test's temp dir, points it at the token's library and
// sets its SIGNERD_FWD_* settings (e.g. "HIDE_EDDSA": "1") in the
// environment for the rest of the test. It returns the module's path. Each
// call builds a library of its own, so no state carries over between tests.
func (tok *Token) Forwarder(t testing.TB, settings map[string]string) string {
	t.Helper()
	cc, err := exec.LookPath("cc")
	if err != nil {
		t.Fatalf("no C compiler to build the forwarding module; run `make deps` (gcc): %v", err)
	}
	out, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", "github.com/miekg/pkcs11").Output()
	if err != nil {
		t.Fatalf("find miekg/pkcs11's PKCS#11 headers: %v", err)
	}
	headers := strings.TrimSpace(string(out))
	dir := t.TempDir()
	src := filepath.Join(dir, "forwarder.c")
	if err := os.WriteFile(src, forwarderSource, 0o600); err != nil {
		t.Fatal(err)
	}
	lib := filepath.Join(dir, "forwarder.so")
	if out, err := exec.Command(cc, "-shared", "-fPIC", "-Wall", "-Werror", "-I", headers, "-o", lib, src, "-ldl", "-lpthread").CombinedOutput(); err != nil {
		t.Fatalf("build the forwarding module: %v\n%s", err, out)
	}
	t.Setenv("SIGNERD_FWD_MODULE", tok.ModulePath)
	for k, v := range settings {
		t.Setenv("SIGNERD_FWD_"+k, v)
	}
	return lib
}
