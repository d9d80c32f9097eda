package softhsmtest

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	signerv1 "github.com/signerd/signerd/gen/signer/v1"
)

// buildGoLoader builds examples/go-loader as a module of its own, outside
// this repository, that requires github.com/signerd/signerd through a
// replace directive: only the public client package is importable from
// there, so this proves the package is enough to write a loader.
func buildGoLoader(t *testing.T) string {
	t.Helper()
	repo, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	src, err := os.ReadFile(filepath.Join(repo, "examples", "go-loader", "main.go"))
	if err != nil {
		t.Fatal(err)
	}
	sum, err := os.ReadFile(filepath.Join(repo, "go.sum"))
	if err != nil {
		t.Fatal(err)
	}
	gomod := fmt.Sprintf("module example.com/loader\n\ngo 1.26\n\nrequire github.com/signerd/signerd v0.0.0\n\nreplace github.com/signerd/signerd => %s\n", repo)
	for name, data := range map[string][]byte{"main.go": src, "go.mod": []byte(gomod), "go.sum": sum} {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	bin := filepath.Join(dir, "go-loader")
	// -mod=mod lets go add the requirements signerd's own go.mod implies;
	// their checksums are in the go.sum copied from the repository.
	cmd := exec.Command("go", "build", "-mod=mod", "-o", bin, ".")
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build the separate module: %v\n%s", err, out)
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return bin
}

func runGoLoader(t *testing.T, bin, socket, org, path string, cred *syscall.Credential) (int, string) {
	t.Helper()
	cmd := exec.Command(bin, "-socket", socket, "-org", org, path)
	if cred != nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
		cmd.Dir = "/"
	}
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return code, out.String()
}

// TestGoLoaderSeparateModule runs the separately built loader against the
// real daemon for each outcome, refusal and bad input.
func TestGoLoaderSeparateModule(t *testing.T) {
	bin := buildGoLoader(t)
	d := startDaemon(t)
	dir, good, strange, tampered, unsigned := loaderPackages(t, d)

	cases := []struct {
		name, org, path, socket string
		code                    int
		want                    string
	}{
		{"verified", "acme", good, d.socket, 0, fmt.Sprintf("loaded %s (VERIFIED, release) sha256:%x", good, sha256.Sum256([]byte("good library")))},
		{"unsigned, admitted by policy", "dev", unsigned, d.socket, 0, "(UNSIGNED_ADMITTED, )"},
		{"tampered", "acme", tampered, d.socket, 1, "refused PACKAGE_TAMPERED"},
		{"untrusted signer", "acme", strange, d.socket, 1, "refused UNTRUSTED_SIGNER"},
		{"unsigned, signatures required", "acme", unsigned, d.socket, 1, "refused SIGNATURE_NOT_FOUND"},
		{"unknown org", "no-such-org", good, d.socket, 1, "refused UNKNOWN_ORG"},
		{"not a regular file", "acme", dir, d.socket, 2, "not a regular file"},
		{"size differs from content", "acme", "/proc/self/status", d.socket, 2, "changed while it was hashed"},
		{"daemon down", "acme", good, filepath.Join(dir, "no-daemon.sock"), 3, "cannot reach signerd"},
		// As signctl: a malformed signature document is bad input, and an
		// answer from something that is not signerd is the daemon's fault.
		{"malformed .sig", "acme", sigBeside(t, dir, "malformed.so", good, func(p string) error { return os.WriteFile(p, []byte("{not a signature"), 0o644) }), d.socket, 2, "bad input MALFORMED_SIGNATURE"},
		{"answer about another package", "acme", good, answeringSigner(t, &signerv1.VerifyResponse{
			Outcome: signerv1.VerifyOutcome_VERIFY_OUTCOME_VERIFIED, Verified: true, PackageHash: strings.Repeat("ab", 32)}), 3, "signerd answered Verify for package hash"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			code, out := runGoLoader(t, bin, tc.socket, tc.org, tc.path, nil)
			if code != tc.code || !strings.Contains(out, tc.want) {
				t.Fatalf("exit %d, want %d and %q:\n%s", code, tc.code, tc.want, out)
			}
		})
	}

	t.Run("socket it may not open", func(t *testing.T) {
		needRoot(t, "the Go loader reports a socket it may not open as permission denied, not as an unreachable daemon")
		traversable(t, d.socket) // the directories, not the 0660 root-owned socket
		traversable(t, filepath.Join(filepath.Dir(bin), "x"))
		code, out := runGoLoader(t, bin, d.socket, "acme", "/etc/hostname", &syscall.Credential{Uid: nobodyUID, Gid: nobodyGID})
		if code != 4 || !strings.Contains(out, "may not open signerd's socket") {
			t.Fatalf("exit %d, want 4 naming the socket:\n%s", code, out)
		}
	})
}

// TestSignctlSocketPermissionDenied: signctl dials through the client
// package, so a socket the caller may not open is exit 4, named as such,
// not "daemon unreachable".
func TestSignctlSocketPermissionDenied(t *testing.T) {
	needRoot(t, "signctl reports a socket it may not open as exit 4, not as \"daemon unreachable\"")
	d := startDaemon(t)
	traversable(t, d.socket) // the directories, not the 0660 root-owned socket
	r := signctlAsNobody(t, d, "verify", "/etc/hostname", "--org", "acme")
	if r.code != 4 || !strings.Contains(r.stderr, "may not open signerd's socket") {
		t.Fatalf("exit %d, want 4 naming the socket:\n%s%s", r.code, r.stdout, r.stderr)
	}
}
