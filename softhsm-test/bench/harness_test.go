package bench

// Adapted from softhsm-test/harness_test.go (another package): a real
// signerd on a fresh SoftHSM2 token, and the real signctl.

import (
	"bytes"
	"context"
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

// daemon is a running signerd.
type daemon struct {
	tok     *softhsm.Token
	socket  string
	db      string
	pinFile string
	cmd     *exec.Cmd
	logs    *syncBuffer
	exited  chan error
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

// startDaemon starts signerd on a new token, database and socket, with its
// default settings (log level info: nothing is logged per successful call;
// 8 HSM sessions), and with Go's profiler on its metrics address if
// pprof.
func startDaemon(t *testing.T, pprof bool) *daemon {
	t.Helper()
	tok := softhsm.NewToken(t)
	dir := t.TempDir()
	d := &daemon{
		tok:     tok,
		socket:  filepath.Join(dir, "run", "signerd.sock"),
		db:      filepath.Join(dir, "signerd.db"),
		pinFile: tok.WritePINFile(t),
		logs:    &syncBuffer{},
		exited:  make(chan error, 1),
	}
	args := []string{"--pkcs11-module", tok.ModulePath, "--token-label", tok.Label, "--pin-file", d.pinFile,
		"--db", d.db, "--socket", d.socket, "--log-level", "info",
		// Its commit counter says how many signatures share a durable
		// commit (commitPhase).
		"--metrics-listen", "127.0.0.1:0"}
	if pprof {
		args = append(args, "--metrics-pprof")
	}
	d.run(t, nil, 15*time.Second, args...)
	return d
}

// run starts signerd with args (and env besides SOFTHSM2_CONF), stops it
// when the test ends, and waits up to limit until it serves; it fails the
// test if signerd exits or never serves.
func (d *daemon) run(t *testing.T, env []string, limit time.Duration, args ...string) {
	t.Helper()
	d.cmd = exec.Command(bins.signerd, args...)
	d.cmd.Env = append(append(os.Environ(), "SOFTHSM2_CONF="+d.tok.ConfPath), env...)
	d.cmd.Stdout, d.cmd.Stderr = d.logs, d.logs
	if err := d.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { d.exited <- d.cmd.Wait() }()
	t.Cleanup(func() { d.stop(t) })
	deadline := time.Now().Add(limit)
	for time.Now().Before(deadline) {
		select {
		case err := <-d.exited:
			d.exited <- err
			t.Fatalf("signerd exited during start-up: %v\n%s", err, d.logs.String())
		default:
		}
		if d.healthy() {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("signerd did not become healthy\n%s", d.logs.String())
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
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	resp, err := c.Health.Check(ctx, &grpc_health_v1.HealthCheckRequest{})
	return err == nil && resp.GetStatus() == grpc_health_v1.HealthCheckResponse_SERVING
}

// stop sends SIGTERM and waits; it is idempotent.
func (d *daemon) stop(t *testing.T) {
	if d.cmd == nil || d.cmd.Process == nil {
		return
	}
	select {
	case err := <-d.exited:
		d.exited <- err
		return
	default:
	}
	_ = d.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-d.exited:
		d.exited <- err
		if err != nil {
			t.Errorf("signerd exited with %v\n%s", err, d.logs.String())
		}
	case <-time.After(30 * time.Second):
		_ = d.cmd.Process.Kill()
		t.Errorf("signerd did not stop on SIGTERM\n%s", d.logs.String())
	}
}

// run is one finished signctl or openssl process.
type run struct {
	stdout, stderr string
	wall           time.Duration
	maxRSS         int64 // bytes: the child's peak resident set (VmHWM)
}

// command runs a program to completion and measures its wall time (from
// just before fork to just after wait) and its peak resident set size.
func command(env []string, name string, args ...string) (run, error) {
	cmd := exec.Command(name, args...)
	cmd.Env = env
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	start := time.Now()
	err := cmd.Start()
	var peak int64
	if err == nil {
		stop := make(chan struct{})
		sampled := make(chan int64, 1)
		status := fmt.Sprintf("/proc/%d/status", cmd.Process.Pid)
		// The first reading here, not in the goroutine: on a loaded
		// machine the goroutine may first run after a short-lived process
		// has been reaped, while until Wait it is always there to read.
		first := readHWM(status)
		go func() { sampled <- sampleHWM(status, first, stop) }()
		err = cmd.Wait()
		close(stop)
		peak = max(first, <-sampled, 0)
	}
	r := run{wall: time.Since(start), stdout: stdout.String(), stderr: stderr.String(), maxRSS: peak}
	if err != nil {
		return r, fmt.Errorf("%s %s: %v\nstdout: %s\nstderr: %s", filepath.Base(name), strings.Join(args, " "), err, r.stdout, r.stderr)
	}
	return r, nil
}

// sampleHWM reads the process's VmHWM, the peak resident set of the
// program it runs, every 2 ms until stop closes or the process is gone,
// and returns the last value read (bytes). rusage's ru_maxrss would not
// do: exec carries the forking process's own peak into the child's, so it
// reports the benchmark's memory, not signctl's.
func sampleHWM(status string, last int64, stop <-chan struct{}) int64 {
	for {
		hwm := readHWM(status)
		if hwm < 0 {
			return last
		}
		last = max(last, hwm)
		select {
		case <-stop:
			return last
		case <-time.After(2 * time.Millisecond):
		}
	}
}

// readHWM returns the VmHWM in a /proc/PID/status file in bytes: 0 when
// the process has no image any more (a zombie), -1 when it is gone.
func readHWM(status string) int64 {
	b, err := os.ReadFile(status)
	if err != nil {
		return -1
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			var kib int64
			if _, err := fmt.Sscan(strings.TrimSuffix(strings.TrimSpace(v), " kB"), &kib); err == nil && kib > 0 {
				return kib * 1024
			}
		}
	}
	return 0
}

// signctl runs the real signctl against d and fails the test unless it
// exits 0.
func signctl(t *testing.T, d *daemon, args ...string) run {
	t.Helper()
	r, err := command(append(os.Environ(), "SIGNCTL_SOCKET="+d.socket), bins.signctl, args...)
	if err != nil {
		t.Fatal(err)
	}
	return r
}
