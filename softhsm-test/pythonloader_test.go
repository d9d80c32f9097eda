package softhsmtest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	signerv1 "github.com/signerd/signerd/gen/signer/v1"
)

// debianPython is the interpreter with Debian's python3-grpcio (make deps
// installs it); a python3 earlier on PATH (pyenv's, say) lacks it.
const debianPython = "/usr/bin/python3"

// pythonStubs generates the Python stubs of proto/ and of the loader's two
// google.rpc messages into a temp dir, as the README says: with Debian's
// protoc and grpc_python_plugin (python3-grpc-tools bundles protoc 3.5,
// which predates proto3 optional fields).
func pythonStubs(t *testing.T) string {
	t.Helper()
	if out, err := exec.Command(debianPython, "-c", "import grpc").CombinedOutput(); err != nil {
		t.Fatalf("the Python loader needs Debian's python3-grpcio (make deps installs it): %v\n%s", err, out)
	}
	for _, tool := range []string{"protoc", "grpc_python_plugin"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("generating the Python loader's stubs needs %s: make deps installs protobuf-compiler and protobuf-compiler-grpc", tool)
		}
	}
	dir := t.TempDir()
	protos, _ := filepath.Glob("../proto/signer/v1/*.proto")
	rpc, _ := filepath.Glob("../examples/python-loader/proto/google/rpc/*.proto")
	args := append([]string{"-I../proto", "-I../examples/python-loader/proto", "-I/usr/include",
		"--python_out=" + dir, "--grpc_python_out=" + dir, "--plugin=protoc-gen-grpc_python=/usr/bin/grpc_python_plugin"},
		append(protos, rpc...)...)
	if out, err := exec.Command("protoc", args...).CombinedOutput(); err != nil {
		t.Fatalf("protoc: %v\n%s", err, out)
	}
	return dir
}

// pyLoad runs examples/python-loader/loader.py and returns its exit code
// and JSON result; cred, if set, runs it as another user.
func pyLoad(t *testing.T, stubs, socket, org, path string, cred *syscall.Credential) (int, map[string]any) {
	t.Helper()
	loader, err := filepath.Abs("../examples/python-loader/loader.py")
	if err != nil {
		t.Fatal(err)
	}
	return pyRun(t, stubs, cred, loader, "--socket", socket, "--org", org, path)
}

// pyRun runs a Python script with the stubs and returns its exit code and
// JSON result. A loader that hangs (waiting on a FIFO, say) is killed after
// a minute and fails the test.
func pyRun(t *testing.T, stubs string, cred *syscall.Credential, args ...string) (int, map[string]any) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, debianPython, args...)
	cmd.Env = append(os.Environ(), "PYTHONPATH="+stubs, "PYTHONDONTWRITEBYTECODE=1")
	if cred != nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
		cmd.Dir = "/"
	}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	if ctx.Err() != nil {
		t.Fatalf("%v: still running after a minute (hangs?)\nstdout: %s\nstderr: %s", args, stdout.String(), stderr.String())
	}
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	var res map[string]any
	if err := json.Unmarshal(stdout.Bytes(), &res); err != nil {
		t.Fatalf("loader.py printed no JSON object (exit %d): %v\nstdout: %s\nstderr: %s", code, err, stdout.String(), stderr.String())
	}
	return code, res
}

// TestPythonLoader runs the Python loader against the real daemon: it
// loads verified and policy-admitted packages (the bytes it loaded are the
// file's) and refuses tampered, untrusted, unsigned-but-required and
// unknown-org ones with signerd's reason, and bad input with signctl's
// exit codes.
func TestPythonLoader(t *testing.T) {
	stubs := pythonStubs(t)
	d := startDaemon(t)
	dir, good, strange, tampered, unsigned := loaderPackages(t, d)

	cases := []struct {
		name, org, path string
		socket          string
		code            int
		reason, outcome string
	}{
		{"verified", "acme", good, d.socket, 0, "", "VERIFY_OUTCOME_VERIFIED"},
		{"unsigned, admitted by policy", "dev", unsigned, d.socket, 0, "", "VERIFY_OUTCOME_UNSIGNED_ADMITTED"},
		{"tampered", "acme", tampered, d.socket, 1, "PACKAGE_TAMPERED", ""},
		{"untrusted signer", "acme", strange, d.socket, 1, "UNTRUSTED_SIGNER", ""},
		{"unsigned, signatures required", "acme", unsigned, d.socket, 1, "SIGNATURE_NOT_FOUND", ""},
		{"unknown org", "no-such-org", good, d.socket, 1, "UNKNOWN_ORG", ""},
		{"not a regular file", "acme", dir, d.socket, 2, "NOT_REGULAR_FILE", ""},
		{"size differs from content", "acme", "/proc/self/status", d.socket, 2, "FILE_CHANGED", ""},
		{"daemon down", "acme", good, filepath.Join(dir, "no-daemon.sock"), 3, "UNAVAILABLE", ""},
		// The .sig beside the package, as the Go client reads it: an empty
		// one is malformed (sent, it would mean "none" and signerd's
		// records would decide), and a FIFO or a directory is refused
		// without waiting on it.
		{"empty .sig", "acme", sigBeside(t, dir, "empty.so", good, func(p string) error { return os.WriteFile(p, nil, 0o644) }), d.socket, 2, "MALFORMED_SIGNATURE", ""},
		{".sig is a FIFO", "acme", sigBeside(t, dir, "fifo.so", good, func(p string) error { return syscall.Mkfifo(p, 0o644) }), d.socket, 2, "NOT_REGULAR_FILE", ""},
		{".sig is a directory", "acme", sigBeside(t, dir, "dir.so", good, func(p string) error { return os.Mkdir(p, 0o755) }), d.socket, 2, "NOT_REGULAR_FILE", ""},
		// Cloacina's name for the .sig of a file without an extension
		// (pkg..sig) is read too: an empty one is refused as at pkg.sig.
		{"empty Cloacina-named .sig", "acme", cloacinaSigBeside(t, dir, "noext", good, func(p string) error { return os.WriteFile(p, nil, 0o644) }), d.socket, 2, "MALFORMED_SIGNATURE", ""},
		// Something else on the socket: an answer about other bytes, or
		// with no outcome, admits nothing.
		{"answer about another package", "acme", good, answeringSigner(t, &signerv1.VerifyResponse{
			Outcome: signerv1.VerifyOutcome_VERIFY_OUTCOME_VERIFIED, Verified: true, PackageHash: strings.Repeat("ab", 32)}), 3, "INTERNAL", ""},
		{"answer with no outcome", "acme", good, answeringSigner(t, &signerv1.VerifyResponse{
			Verified: true, PackageHash: fileSHA256(t, good)}), 3, "INTERNAL", ""},
		// signerd's errors carry a reason whether or not they are a
		// refusal: only a refusal is exit 1, as for signctl.
		{"daemon failure with a reason", "acme", good, failingSigner(t, codes.Internal, "INTERNAL"), 3, "INTERNAL", ""},
		{"HSM unavailable", "acme", good, failingSigner(t, codes.Unavailable, "HSM_UNAVAILABLE"), 3, "HSM_UNAVAILABLE", ""},
		{"bad input with a reason", "acme", good, failingSigner(t, codes.InvalidArgument, "INVALID_ARGUMENT"), 2, "INVALID_ARGUMENT", ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			code, res := pyLoad(t, stubs, tc.socket, tc.org, tc.path, nil)
			if code != tc.code {
				t.Fatalf("exit %d, want %d: %v", code, tc.code, res)
			}
			if tc.code != 0 {
				if res["loaded"] != false || res["reason"] != tc.reason {
					t.Fatalf("result %v, want loaded false, reason %s", res, tc.reason)
				}
				return
			}
			want, err := os.ReadFile(tc.path)
			if err != nil {
				t.Fatal(err)
			}
			sum := sha256.Sum256(want)
			if res["loaded"] != true || res["outcome"] != tc.outcome || res["sha256"] != hex.EncodeToString(sum[:]) {
				t.Fatalf("result %v, want loaded %s with sha256 %x", res, tc.outcome, sum)
			}
		})
	}

	// Whoever may write the package writes over its inode, and appends to
	// it, between Verify's answer and the load: what is loaded is still
	// the verified bytes (the Go loader's WithSealedCopy).
	t.Run("in-place write after the check", func(t *testing.T) {
		want, err := os.ReadFile(good)
		if err != nil {
			t.Fatal(err)
		}
		path := writeFile(t, t.TempDir(), "inplace.so", want)
		if err := os.WriteFile(path+".sig", mustRead(t, good+".sig"), 0o644); err != nil {
			t.Fatal(err)
		}
		loaderDir, err := filepath.Abs("../examples/python-loader")
		if err != nil {
			t.Fatal(err)
		}
		script := writeFile(t, t.TempDir(), "inplace.py", []byte(`import sys
sys.path.insert(0, sys.argv[1])
import loader
from signer.v1 import signer_service_pb2_grpc
Real = signer_service_pb2_grpc.SignerServiceStub
class Stub(Real):
    def __init__(self, channel):
        super().__init__(channel)
        verify = self.Verify
        def write_after(*a, **k):
            answer = verify(*a, **k)
            with open(sys.argv[-1], "r+b") as f:
                f.write(b"\xcc" * 4)
                f.seek(0, 2)
                f.write(b"appended after the check")
            return answer
        self.Verify = write_after
signer_service_pb2_grpc.SignerServiceStub = Stub
sys.exit(loader.main(sys.argv[2:]))
`))
		code, res := pyRun(t, stubs, nil, script, loaderDir, "--socket", d.socket, "--org", "acme", path)
		if onDisk := mustRead(t, path); bytes.Equal(onDisk, want) {
			t.Fatal("the write did not happen")
		}
		sum := sha256.Sum256(want)
		if code != 0 || res["loaded"] != true || res["sha256"] != hex.EncodeToString(sum[:]) || res["bytes"] != float64(len(want)) {
			t.Fatalf("exit %d %v, want the %d verified bytes loaded (sha256 %x)", code, res, len(want), sum)
		}
	})

	t.Run("package it may not read", func(t *testing.T) {
		needRoot(t, "a package the loader's user may not read is bad input (exit 2), as for signctl")
		private := writeFile(t, t.TempDir(), "private.so", mustRead(t, good))
		if err := os.Chmod(private, 0o600); err != nil {
			t.Fatal(err)
		}
		traversable(t, private)
		traversable(t, filepath.Join(stubs, "x"))
		code, res := pyLoad(t, stubs, d.socket, "acme", private, &syscall.Credential{Uid: nobodyUID, Gid: nobodyGID})
		if code != 2 || res["reason"] != "UNREADABLE" {
			t.Fatalf("exit %d %v, want 2 UNREADABLE", code, res)
		}
	})

	t.Run("socket it may not open", func(t *testing.T) {
		needRoot(t, "the Python loader reports a socket it may not open as permission denied, not as an unreachable daemon")
		traversable(t, d.socket) // the directories, not the 0660 root-owned socket
		traversable(t, filepath.Join(stubs, "x"))
		code, res := pyLoad(t, stubs, d.socket, "acme", "/etc/hostname", &syscall.Credential{Uid: nobodyUID, Gid: nobodyGID})
		if code != 4 || res["reason"] != "PERMISSION_DENIED" {
			t.Fatalf("exit %d %v, want 4 PERMISSION_DENIED", code, res)
		}
	})
}

// sigBeside copies the package from into dir as name and makes name.sig
// with mk; it returns the copy's path.
func sigBeside(t *testing.T, dir, name, from string, mk func(path string) error) string {
	t.Helper()
	path := writeFile(t, dir, name, mustRead(t, from))
	if err := mk(path + ".sig"); err != nil {
		t.Fatal(err)
	}
	return path
}

// cloacinaSigBeside is sigBeside with the signature at Cloacina's name
// for a file without an extension, name + "..sig".
func cloacinaSigBeside(t *testing.T, dir, name, from string, mk func(path string) error) string {
	t.Helper()
	path := writeFile(t, dir, name, mustRead(t, from))
	if err := mk(path + "..sig"); err != nil {
		t.Fatal(err)
	}
	return path
}

// answeringSigner serves, on a new socket, a SignerService whose Verify
// always answers resp.
func answeringSigner(t *testing.T, resp *signerv1.VerifyResponse) string {
	t.Helper()
	return fakeServer(t, func(g *grpc.Server) {
		signerv1.RegisterSignerServiceServer(g, &answeringSignerServer{resp: resp})
	})
}

type answeringSignerServer struct {
	signerv1.UnimplementedSignerServiceServer
	resp *signerv1.VerifyResponse
	err  error
}

func (s *answeringSignerServer) Verify(context.Context, *signerv1.VerifyRequest) (*signerv1.VerifyResponse, error) {
	return s.resp, s.err
}

// failingSigner serves, on a new socket, a SignerService whose Verify
// fails with code and an ErrorInfo of reason, as signerd's errors that
// are not refusals do.
func failingSigner(t *testing.T, code codes.Code, reason string) string {
	t.Helper()
	st, err := status.New(code, "failed").WithDetails(&errdetails.ErrorInfo{Reason: reason, Domain: "signerd.dev"})
	if err != nil {
		t.Fatal(err)
	}
	return fakeServer(t, func(g *grpc.Server) {
		signerv1.RegisterSignerServiceServer(g, &answeringSignerServer{err: st.Err()})
	})
}

// fileSHA256 is the lowercase hex SHA-256 of the file at path.
func fileSHA256(t *testing.T, path string) string {
	t.Helper()
	sum := sha256.Sum256(mustRead(t, path))
	return hex.EncodeToString(sum[:])
}
