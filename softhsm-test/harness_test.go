// Package softhsmtest runs the real signerd and signctl binaries against a
// fresh SoftHSM2 token per test, with a real bbolt file, and checks their
// output with openssl where an independent implementation exists.
package softhsmtest

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc/health/grpc_health_v1"

	"github.com/signerd/signerd/client"
	"github.com/signerd/signerd/internal/testutil/softhsm"
)

var bins struct {
	signerd, signctl string
}

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "signerd-e2e-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	bins.signerd = filepath.Join(dir, "signerd")
	bins.signctl = filepath.Join(dir, "signctl")
	for bin, pkg := range map[string]string{bins.signerd: "../cmd/signerd", bins.signctl: "../cmd/signctl"} {
		out, err := exec.Command("go", "build", "-o", bin, pkg).CombinedOutput()
		if err != nil {
			fmt.Fprintf(os.Stderr, "build %s: %v\n%s", pkg, err, out)
			os.RemoveAll(dir)
			os.Exit(1)
		}
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// daemon is a running signerd.
type daemon struct {
	t       *testing.T
	tok     *softhsm.Token
	dir     string
	socket  string
	db      string
	pinFile string
	module  string   // --pkcs11-module when not the token's own library
	uri     string   // --pkcs11-uri instead of module, label and PIN file
	env     []string // added to signerd's environment (the module's, NOTIFY_SOCKET, …)
	cmd     *exec.Cmd
	logs    *syncBuffer
	exited  chan error
	// wrap runs signerd through a command (e.g. setpriv) that execs it.
	wrap []string
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// startDaemon starts signerd on a new token, database and socket.
func startDaemon(t *testing.T, extraArgs ...string) *daemon {
	t.Helper()
	return startDaemonWrapped(t, nil, extraArgs...)
}

// startDaemonWrapped is startDaemon with signerd run through wrap, a
// command that execs it (setpriv, prlimit): the daemon keeps wrap's PID.
func startDaemonWrapped(t *testing.T, wrap []string, extraArgs ...string) *daemon {
	t.Helper()
	tok := softhsm.NewToken(t)
	dir := t.TempDir()
	d := &daemon{
		t:       t,
		tok:     tok,
		dir:     dir,
		socket:  filepath.Join(dir, "run", "signerd.sock"),
		db:      filepath.Join(dir, "signerd.db"),
		pinFile: tok.WritePINFile(t),
		wrap:    wrap,
	}
	d.start(t, extraArgs...)
	return d
}

func (d *daemon) args(extra ...string) []string {
	module := d.tok.ModulePath
	if d.module != "" {
		module = d.module
	}
	choose := []string{"--pkcs11-module", module, "--token-label", d.tok.Label, "--pin-file", d.pinFile}
	if d.uri != "" {
		choose = []string{"--pkcs11-uri", d.uri}
	}
	return append(append(choose,
		"--db", d.db, "--socket", d.socket, "--log-level", "debug",
	), extra...)
}

func (d *daemon) start(t *testing.T, extraArgs ...string) {
	t.Helper()
	d.logs = &syncBuffer{}
	argv := append(append(append([]string{}, d.wrap...), bins.signerd), d.args(extraArgs...)...)
	d.cmd = exec.Command(argv[0], argv[1:]...)
	d.cmd.Env = append(append(os.Environ(), "SOFTHSM2_CONF="+d.tok.ConfPath), d.env...)
	d.cmd.Stdout, d.cmd.Stderr = d.logs, d.logs
	if err := d.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	d.exited = make(chan error, 1)
	go func() { d.exited <- d.cmd.Wait() }()
	t.Cleanup(func() { d.stop(t) })
	d.waitServing(t)
}

func (d *daemon) healthy() bool {
	if _, err := os.Stat(d.socket); err != nil {
		return false
	}
	c, err := client.DialUnix(d.socket)
	if err != nil {
		return false
	}
	defer c.Close()
	// Generous: some callers assert health once, on a loaded machine.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := c.Health.Check(ctx, &grpc_health_v1.HealthCheckRequest{})
	return err == nil && resp.GetStatus() == grpc_health_v1.HealthCheckResponse_SERVING
}

// stop sends SIGTERM and waits; it returns the exit error.
func (d *daemon) stop(t *testing.T) error {
	if d.cmd == nil || d.cmd.Process == nil {
		return nil
	}
	select {
	case err := <-d.exited:
		d.exited <- err
		return err
	default:
	}
	_ = d.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-d.exited:
		d.exited <- err
		return err
	case <-time.After(30 * time.Second):
		_ = d.cmd.Process.Kill()
		t.Errorf("signerd did not stop on SIGTERM\n%s", d.logs.String())
		return fmt.Errorf("killed")
	}
}

// result of one signctl run.
type result struct {
	code           int
	stdout, stderr string
}

func (r result) json(t *testing.T) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal([]byte(r.stdout), &m); err != nil {
		t.Fatalf("signctl output is not a JSON object: %v\n%s", err, r.stdout)
	}
	return m
}

// signctl runs the real signctl binary against d (nil: no daemon).
func signctl(t *testing.T, d *daemon, args ...string) result {
	t.Helper()
	cmd := exec.Command(bins.signctl, args...)
	env := os.Environ()
	if d != nil {
		env = append(env, "SIGNCTL_SOCKET="+d.socket)
	} else {
		env = append(env, "SIGNCTL_SOCKET="+filepath.Join(t.TempDir(), "no-daemon.sock"))
	}
	cmd.Env = env
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return result{code: code, stdout: stdout.String(), stderr: stderr.String()}
}

// mustSignctl runs signctl and fails the test unless it exits 0.
func mustSignctl(t *testing.T, d *daemon, args ...string) result {
	t.Helper()
	r := signctl(t, d, args...)
	if r.code != 0 {
		t.Fatalf("signctl %s: exit %d\nstdout: %s\nstderr: %s", strings.Join(args, " "), r.code, r.stdout, r.stderr)
	}
	return r
}

func writeFile(t *testing.T, dir, name string, data []byte) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func copyFixture(t *testing.T, dir, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "cloacina", name))
	if err != nil {
		t.Fatal(err)
	}
	return writeFile(t, dir, name, b)
}

func openssl(t *testing.T, args ...string) error {
	t.Helper()
	out, err := exec.Command("openssl", args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("openssl %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return nil
}

// lines returns the non-empty lines of s.
func lines(s string) []string {
	var out []string
	sc := bufio.NewScanner(strings.NewReader(s))
	for sc.Scan() {
		if l := strings.TrimSpace(sc.Text()); l != "" {
			out = append(out, l)
		}
	}
	return out
}
