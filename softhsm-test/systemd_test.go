package softhsmtest

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/signerd/signerd/internal/testutil/softhsm"
)

// needTool fails (never skips) when a tool `make deps` installs is missing.
func needTool(t *testing.T, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		t.Fatalf("%s is missing: run `make deps` (Debian package systemd)", name)
	}
	return p
}

// newDaemon prepares a daemon on a fresh token without starting it.
func newDaemon(t *testing.T) *daemon {
	t.Helper()
	tok := softhsm.NewToken(t)
	dir := t.TempDir()
	return &daemon{
		t: t, tok: tok, dir: dir,
		socket:  filepath.Join(dir, "run", "signerd.sock"),
		db:      filepath.Join(dir, "signerd.db"),
		pinFile: tok.WritePINFile(t),
	}
}

// freeLoopbackPort returns a TCP port on 127.0.0.1 that was free a moment
// ago: systemd-socket-activate needs the address before it starts.
func freeLoopbackPort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// activate runs signerd under systemd-socket-activate, which listens on
// the given addresses and starts signerd, handing them over as LISTEN_FDS,
// when the first connection arrives on one of them.
func (d *daemon) activate(t *testing.T, listen []string, extra ...string) {
	t.Helper()
	args := []string{}
	for _, l := range listen {
		args = append(args, "-l", l)
	}
	// It passes its children only the environment named with -E.
	for _, e := range append([]string{"SOFTHSM2_CONF=" + d.tok.ConfPath}, d.env...) {
		args = append(args, "-E", e)
	}
	args = append(args, bins.signerd)
	if err := os.MkdirAll(filepath.Dir(d.socket), 0o750); err != nil {
		t.Fatal(err)
	}
	d.spawn(t, needTool(t, "systemd-socket-activate"), append(args, d.args(extra...)...)...)
	relWaitFor(t, "systemd-socket-activate listening", 10*time.Second, func() bool {
		return strings.Contains(d.logs.String(), "Listening on")
	})
}

// spawn starts prog (signerd, or a launcher of it) without waiting for it
// to serve.
func (d *daemon) spawn(t *testing.T, prog string, args ...string) {
	t.Helper()
	d.logs = &syncBuffer{}
	d.cmd = exec.Command(prog, args...)
	d.cmd.Env = append(append(os.Environ(), "SOFTHSM2_CONF="+d.tok.ConfPath), d.env...)
	d.cmd.Stdout, d.cmd.Stderr = d.logs, d.logs
	if err := d.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	d.exited = make(chan error, 1)
	go func() { d.exited <- d.cmd.Wait() }()
	t.Cleanup(func() { d.stop(t) })
}

func inode(t *testing.T, path string) uint64 {
	t.Helper()
	fi, err := os.Lstat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Sys().(*syscall.Stat_t).Ino
}

// TestSocketActivation: under systemd-socket-activate (what systemd does
// with signerd.socket), signerd serves signctl on the Unix socket and the
// TCP socket it was passed, instead of creating its own; a passed socket
// that the configuration does not name stops it with a clear error.
func TestSocketActivation(t *testing.T) {
	d := newDaemon(t)
	port := strconv.Itoa(freeLoopbackPort(t))
	d.activate(t, []string{d.socket, "127.0.0.1:" + port}, "--listen", "127.0.0.1:"+port, "--insecure-loopback")
	before := inode(t, d.socket)

	// The first connection starts signerd; signctl waits for it.
	r := signctl(t, d, "key", "create", "release", "--algorithm", "ed25519")
	if r.code != 0 {
		t.Fatalf("exit %d: %s\n%s", r.code, r.stderr, d.logs.String())
	}
	d.waitForLog(t, "socket_activated=true tcp_socket_activated=true") // both sockets passed by systemd
	// The mode logged is the passed socket's, not --socket-mode's 0660.
	if fi, err := os.Stat(d.socket); err != nil {
		t.Fatal(err)
	} else if want := fmt.Sprintf("socket_mode=%04o ", fi.Mode().Perm()); !strings.Contains(d.logs.String(), want) {
		t.Fatalf("the serving line does not give the passed socket's mode (%s):\n%s", want, d.logs.String())
	}
	if after := inode(t, d.socket); after != before {
		t.Fatalf("the socket was replaced (inode %d, then %d): signerd made its own instead of serving the passed one", before, after)
	}
	mustSignctl(t, d, "trust", "add", "--org", "acme", "--key", "release")
	pkg := writeFile(t, t.TempDir(), "lib.so", []byte("activated"))
	mustSignctl(t, d, "sign", pkg, "--key", "release")
	expectExit(t, signctl(t, nil, "--addr", "127.0.0.1:"+port, "verify", pkg, "--org", "acme"), 0, "verify over the passed TCP socket")

	if err := d.stop(t); err != nil {
		t.Fatalf("signerd under socket activation did not stop cleanly: %v\n%s", err, d.logs.String())
	}
	// The socket belongs to systemd: signerd leaves it in place for the
	// next activation.
	if _, err := os.Lstat(d.socket); err != nil {
		t.Fatalf("signerd removed the socket systemd passed it: %v", err)
	}

	t.Run("a passed socket the configuration does not name", func(t *testing.T) {
		d := newDaemon(t)
		other := filepath.Join(d.dir, "run", "other.sock")
		d.activate(t, []string{other})
		c, err := net.Dial("unix", other) // starts signerd
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		select {
		case err := <-d.exited:
			d.exited <- err
			if err == nil {
				t.Fatal("signerd served a socket its configuration does not name")
			}
		case <-time.After(30 * time.Second):
			t.Fatalf("signerd did not stop on a mismatched passed socket:\n%s", d.logs.String())
		}
		for _, want := range []string{"socket activation", other, d.socket} {
			if !strings.Contains(d.logs.String(), want) {
				t.Fatalf("the error should mention %q:\n%s", want, d.logs.String())
			}
		}
	})
}

// notifySocket is a test NOTIFY_SOCKET: the datagrams signerd sends, in
// order of arrival.
type notifySocket struct {
	path string
	msgs chan string
}

func newNotifySocket(t *testing.T) *notifySocket {
	t.Helper()
	path := filepath.Join(t.TempDir(), "notify.sock")
	c, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	n := &notifySocket{path: path, msgs: make(chan string, 4096)}
	go func() {
		buf := make([]byte, 4096)
		for {
			k, err := c.Read(buf)
			if err != nil {
				close(n.msgs)
				return
			}
			n.msgs <- string(buf[:k])
		}
	}()
	t.Cleanup(func() { c.Close() })
	return n
}

// next returns the next message for which keep is true.
func (n *notifySocket) next(t *testing.T, keep func(string) bool) string {
	t.Helper()
	timeout := time.After(30 * time.Second)
	for {
		select {
		case m, ok := <-n.msgs:
			if !ok {
				t.Fatal("notify socket closed")
			}
			if keep(m) {
				return m
			}
		case <-timeout:
			t.Fatal("no systemd notification arrived")
		}
	}
}

// state is the message's first line (READY=1, RELOADING=1, …).
func state(m string) string {
	first, _, _ := strings.Cut(m, "\n")
	return first
}

// TestSystemdNotify: with NOTIFY_SOCKET set (Type=notify), signerd says
// READY=1 once it serves, RELOADING=1 (with MONOTONIC_USEC) then READY=1
// around a SIGHUP reload, and STOPPING=1 (with EXTEND_TIMEOUT_USEC) when
// SIGTERM starts the drain, in
// that order and nothing else.
func TestSystemdNotify(t *testing.T) {
	ns := newNotifySocket(t)
	d := newDaemon(t)
	d.env = []string{"NOTIFY_SOCKET=" + ns.path}
	d.spawn(t, bins.signerd, d.args()...)
	all := func(string) bool { return true }

	ready := ns.next(t, all)
	if state(ready) != "READY=1" {
		t.Fatalf("first notification %q, want READY=1", ready)
	}
	// READY=1 means serving: systemd starts what depends on signerd now,
	// so the health check must answer SERVING at once.
	if !d.healthy() {
		t.Fatalf("READY=1 sent before signerd serves:\n%s", d.logs.String())
	}
	if err := d.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	reloading := ns.next(t, all)
	if state(reloading) != "RELOADING=1" || !strings.Contains(reloading, "MONOTONIC_USEC=") {
		t.Fatalf("after SIGHUP: %q, want RELOADING=1 with MONOTONIC_USEC", reloading)
	}
	if m := ns.next(t, all); state(m) != "READY=1" {
		t.Fatalf("after the reload: %q, want READY=1", m)
	}
	if err := d.stop(t); err != nil {
		t.Fatalf("stop: %v", err)
	}
	// The drain (30 s by default) and the 15 s after it, so that a
	// --shutdown-timeout beyond the unit's TimeoutStopSec is waited for.
	if m := ns.next(t, all); state(m) != "STOPPING=1" || !strings.Contains(m, "EXTEND_TIMEOUT_USEC=45000000\n") {
		t.Fatalf("at SIGTERM: %q, want STOPPING=1 with EXTEND_TIMEOUT_USEC=45000000", m)
	}
	select {
	case m := <-ns.msgs:
		t.Fatalf("a notification after STOPPING=1 and exit: %q", m)
	default:
	}
}

// TestSystemdWatchdog: with WATCHDOG_USEC set (WatchdogSec=), signerd pets
// the watchdog while the HSM answers, stops when the token is pulled (so
// systemd would restart it) and starts again when the token is back.
func TestSystemdWatchdog(t *testing.T) {
	ns := newNotifySocket(t)
	d := newDaemon(t)
	// A tick every 100ms; the token is checked as often.
	d.env = []string{"NOTIFY_SOCKET=" + ns.path, "WATCHDOG_USEC=200000"}
	d.start(t, "--hsm-ping-interval", "100ms")
	isWatchdog := func(m string) bool { return m == "WATCHDOG=1" || strings.HasPrefix(m, "WATCHDOG=1\n") }
	withheld := func(m string) bool { return strings.Contains(m, "watchdog withheld") }
	for range 3 {
		ns.next(t, isWatchdog)
	}

	away := d.tok.MoveAway(t)
	ns.next(t, withheld)
	// From the first withheld tick on, until the token is back: ticks,
	// and none of them pets the watchdog.
	for i := range 5 {
		m := ns.next(t, func(m string) bool { return isWatchdog(m) || withheld(m) })
		if isWatchdog(m) {
			t.Fatalf("tick %d after the token was pulled petted the watchdog: %q", i+1, m)
		}
	}
	away.Restore(t)
	if m := ns.next(t, isWatchdog); !strings.Contains(m, "STATUS=serving") {
		t.Fatalf("first pet after the token came back should say so: %q", m)
	}
	ns.next(t, isWatchdog)
}

// TestSystemdUnits: systemd-analyze verify accepts deploy/systemd's units
// without a single complaint (it exits 0 on unknown keys and bad values,
// only saying so), with signerd installed where ExecStart= says; and their
// offline security exposure stays "OK" (below 2.0; README, "Running under
// systemd").
func TestSystemdUnits(t *testing.T) {
	analyze := needTool(t, "systemd-analyze")
	root := t.TempDir()
	units := filepath.Join(root, "etc", "systemd", "system")
	install := func(from, to string, mode os.FileMode) {
		t.Helper()
		b, err := os.ReadFile(from)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.MkdirAll(filepath.Dir(to), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(to, b, mode); err != nil {
			t.Fatal(err)
		}
	}
	for _, u := range []string{"signerd.service", "signerd.socket"} {
		install(filepath.Join("..", "deploy", "systemd", u), filepath.Join(units, u), 0o644)
	}
	install(bins.signerd, filepath.Join(root, "usr", "bin", "signerd"), 0o755)
	kill, err := exec.LookPath("kill")
	if err != nil {
		t.Fatal(err)
	}
	install(kill, filepath.Join(root, "bin", "kill"), 0o755)
	// The units' dependencies (sockets.target, …) from the host.
	sys := "/usr/lib/systemd/system"
	entries, err := os.ReadDir(sys)
	if err != nil {
		t.Fatalf("%s: %v (run `make deps`)", sys, err)
	}
	for _, e := range entries {
		if e.Type().IsRegular() {
			install(filepath.Join(sys, e.Name()), filepath.Join(root, sys, e.Name()), 0o644)
		}
	}

	out, err := exec.Command(analyze, "verify", "--man=no", "--root="+root, "signerd.socket", "signerd.service").CombinedOutput()
	if err != nil || len(out) != 0 {
		t.Fatalf("systemd-analyze verify: %v\n%s", err, out)
	}

	out, err = exec.Command(analyze, "security", "--offline=true", "--root="+root, "signerd.service").CombinedOutput()
	if err != nil {
		t.Fatalf("systemd-analyze security: %v\n%s", err, out)
	}
	m := exposureRE.FindSubmatch(out)
	if m == nil {
		t.Fatalf("no exposure level in:\n%s", out)
	}
	score, err := strconv.ParseFloat(string(m[1]), 64)
	if err != nil || score >= 2.0 {
		t.Fatalf("signerd.service exposure %s, want below 2.0:\n%s", m[1], out)
	}
	t.Logf("systemd-analyze security: exposure %.1f", score)
}

var exposureRE = regexp.MustCompile(`Overall exposure level for signerd\.service: ([0-9.]+)`)

// TestPINRefusedExitStatus: a PIN the token refuses at start-up exits 77,
// which signerd.service's RestartPreventExitStatus= names, so systemd does
// not offer the wrong PIN again and again (each refusal counts towards
// locking the token); other start-up errors exit 1.
func TestPINRefusedExitStatus(t *testing.T) {
	unit, err := os.ReadFile(filepath.Join("..", "deploy", "systemd", "signerd.service"))
	if err != nil {
		t.Fatal(err)
	}
	if !regexp.MustCompile(`(?m)^RestartPreventExitStatus=77$`).Match(unit) {
		t.Fatal("signerd.service does not keep systemd from restarting after a refused PIN")
	}
	for _, tt := range []struct {
		name string
		pin  string
		code int
	}{
		{"wrong PIN", "0000wrong9999", 77},
		{"wrong token label", "", 1},
	} {
		t.Run(tt.name, func(t *testing.T) {
			d := newDaemon(t)
			args := d.args()
			if tt.pin != "" {
				d.pinFile = writeFile(t, t.TempDir(), "wrong-pin", []byte(tt.pin+"\n"))
				if err := os.Chmod(d.pinFile, 0o600); err != nil {
					t.Fatal(err)
				}
				args = d.args()
			} else {
				args = append(args, "--token-label", "no-such-token")
			}
			cmd := exec.Command(bins.signerd, args...)
			cmd.Env = append(os.Environ(), "SOFTHSM2_CONF="+d.tok.ConfPath)
			out, err := cmd.CombinedOutput()
			ee, ok := err.(*exec.ExitError)
			if !ok || ee.ExitCode() != tt.code {
				t.Fatalf("exit %v, want status %d:\n%s", err, tt.code, out)
			}
		})
	}
}
