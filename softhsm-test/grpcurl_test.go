package softhsmtest

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// grpcurlCommands are the README's "From another language" commands, run
// by bash in a directory whose var/signerd.sock is the daemon's socket, as
// after `make run`.
var grpcurlCommands = struct{ list, health, verify string }{
	list:   `grpcurl -plaintext -unix "$PWD/var/signerd.sock" list`,
	health: `grpcurl -plaintext -unix "$PWD/var/signerd.sock" grpc.health.v1.Health/Check`,
	verify: `grpcurl -plaintext -unix -d "{\"org\":\"acme\",\"digest\":\"$(openssl dgst -sha256 -binary libworkflow.so | base64 -w0)\"}" \
  "$PWD/var/signerd.sock" signer.v1.SignerService/Verify`,
}

// grpcurlPath is the pinned grpcurl that `make test` installs into
// bin/tools and names in SIGNERD_GRPCURL.
func grpcurlPath(t *testing.T) string {
	t.Helper()
	p := os.Getenv("SIGNERD_GRPCURL")
	if p == "" {
		p = "../bin/tools/grpcurl"
	}
	abs, err := filepath.Abs(p)
	if err == nil {
		_, err = os.Stat(abs)
	}
	if err != nil {
		t.Fatalf("grpcurl is not installed (%v): run `make test`, which installs the pinned version into bin/tools, or set SIGNERD_GRPCURL", err)
	}
	return abs
}

// grpcurlWorkdir makes a directory with var/signerd.sock pointing at d's
// socket and the package libworkflow.so.
func grpcurlWorkdir(t *testing.T, d *daemon) string {
	t.Helper()
	dir := t.TempDir()
	if err := os.Mkdir(filepath.Join(dir, "var"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(d.socket, filepath.Join(dir, "var", "signerd.sock")); err != nil {
		t.Fatal(err)
	}
	writeFile(t, dir, "libworkflow.so", []byte("workflow library\n"))
	return dir
}

// runShell runs script with bash in dir, with grpcurl on PATH, and returns
// its exit code and combined output.
func runShell(t *testing.T, grpcurl, dir, script string) (int, string) {
	t.Helper()
	cmd := exec.Command("bash", "-c", script)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "PATH="+filepath.Dir(grpcurl)+":"+os.Getenv("PATH"))
	out, err := cmd.CombinedOutput()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return code, string(out)
}

// TestGrpcurlWithReflection runs the README's grpcurl commands against the
// real daemon: with server reflection they need no .proto files, and a
// refusal's ErrorInfo reason shows in clear.
func TestGrpcurlWithReflection(t *testing.T) {
	grpcurl := grpcurlPath(t)
	d := startDaemon(t)
	mustSignctl(t, d, "key", "create", "release")
	mustSignctl(t, d, "trust", "add", "--org", "acme", "--key", "release")
	mustSignctl(t, d, "policy", "set", "--org", "acme", "--require-signatures=true")
	dir := grpcurlWorkdir(t, d)

	code, out := runShell(t, grpcurl, dir, grpcurlCommands.list)
	for _, svc := range []string{"signer.v1.SignerService", "signer.v1.KeyService", "signer.v1.TrustService",
		"signer.v1.SkillService", "signer.v1.AuditService", "signer.v1.LogService", "grpc.health.v1.Health", "grpc.reflection.v1.ServerReflection"} {
		if code != 0 || !strings.Contains(out, svc+"\n") {
			t.Fatalf("list: exit %d, want %s listed:\n%s", code, svc, out)
		}
	}

	code, out = runShell(t, grpcurl, dir, grpcurlCommands.health)
	if code != 0 || !strings.Contains(out, `"status": "SERVING"`) {
		t.Fatalf("health: exit %d, want SERVING:\n%s", code, out)
	}

	// Unsigned, and acme requires signatures: refused, reason in clear.
	code, out = runShell(t, grpcurl, dir, grpcurlCommands.verify)
	if code == 0 || !strings.Contains(out, "Code: NotFound") ||
		!strings.Contains(out, `"@type": "type.googleapis.com/google.rpc.ErrorInfo"`) ||
		!strings.Contains(out, `"reason": "SIGNATURE_NOT_FOUND"`) || strings.Contains(out, "not recognized") {
		t.Fatalf("verify of an unsigned package: exit %d, want NotFound with reason SIGNATURE_NOT_FOUND in clear:\n%s", code, out)
	}

	// The same command after signing: verified.
	mustSignctl(t, d, "sign", filepath.Join(dir, "libworkflow.so"), "--key", "release")
	code, out = runShell(t, grpcurl, dir, grpcurlCommands.verify)
	if code != 0 || !strings.Contains(out, `"outcome": "VERIFY_OUTCOME_VERIFIED"`) {
		t.Fatalf("verify of a signed package: exit %d, want VERIFY_OUTCOME_VERIFIED:\n%s", code, out)
	}
}

// TestGrpcurlReflectionOff: --reflection=false stops serving reflection;
// the API itself is unchanged.
func TestGrpcurlReflectionOff(t *testing.T) {
	grpcurl := grpcurlPath(t)
	d := startDaemon(t, "--reflection=false")
	dir := grpcurlWorkdir(t, d)
	code, out := runShell(t, grpcurl, dir, grpcurlCommands.list)
	if code == 0 || !strings.Contains(out, "does not support the reflection API") {
		t.Fatalf("list with --reflection=false: exit %d, want a refusal:\n%s", code, out)
	}
	if !d.healthy() {
		t.Fatal("signerd is not serving with --reflection=false")
	}
}
