package softhsm

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// A Route is one way of reaching a token: the module signerd loads and the
// environment that module needs. Tests run the same checks through each
// route, since real modules differ from SoftHSM2's library (how they count
// C_Initialize, which mechanisms they pass on, how slots are numbered).
type Route struct {
	Name       string   // "softhsm2", "pkcs11-spy", "p11-kit-remote", "delayed-forwarder"
	ModulePath string   // the library signerd loads
	Env        []string // entries the module needs, besides SOFTHSM2_CONF
	// Trace is pkcs11-spy's log of every call ("" on other routes), which
	// shows the calls went through it.
	Trace string
	// EdDSA says whether CKM_EDDSA reaches the token through this route:
	// p11-kit 0.24's RPC forwards only the mechanisms it can marshal and
	// does not know CKM_EDDSA, so signerd serves ECDSA only through it.
	EdDSA bool
}

// RouteNames lists the routes Routes builds, in order.
var RouteNames = []string{"softhsm2", "pkcs11-spy", "p11-kit-remote"}

// DelayedForwarder is a further route, not in RouteNames: SoftHSM2 behind
// the test-only forwarding module (Forwarder) with SIGNERD_FWD_DELAY_MS=2,
// a module other than SoftHSM2's own library that carries CKM_EDDSA, each
// signing call delayed as by a network round trip.
const DelayedForwarder = "delayed-forwarder"

// Where Debian and Ubuntu install the forwarding modules (packages
// opensc-pkcs11 and p11-kit-modules).
var (
	spyPaths = []string{
		"/usr/lib/x86_64-linux-gnu/pkcs11/pkcs11-spy.so",
		"/usr/lib/aarch64-linux-gnu/pkcs11/pkcs11-spy.so",
		"/usr/lib/pkcs11/pkcs11-spy.so",
	}
	p11kitClientPaths = []string{
		"/usr/lib/x86_64-linux-gnu/pkcs11/p11-kit-client.so",
		"/usr/lib/aarch64-linux-gnu/pkcs11/p11-kit-client.so",
		"/usr/lib/pkcs11/p11-kit-client.so",
	}
)

func firstExisting(t testing.TB, what, pkg string, paths []string) string {
	t.Helper()
	for _, p := range paths {
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	t.Fatalf("%s is not installed; run `make deps` or apt-get install %s (looked for %q)", what, pkg, paths)
	return ""
}

// Route returns the route called name to the token. "p11-kit-remote" starts
// a `p11-kit server` exporting the token on a Unix socket for the rest of
// the test and also sets P11_KIT_SERVER_ADDRESS in this process (for
// KeyStores opened by the test itself).
func (tok *Token) Route(t testing.TB, name string) Route {
	t.Helper()
	switch name {
	case "softhsm2":
		return Route{Name: name, ModulePath: tok.ModulePath, EdDSA: true}
	case "pkcs11-spy":
		spy := firstExisting(t, "OpenSC's pkcs11-spy", "opensc-pkcs11", spyPaths)
		trace := filepath.Join(t.TempDir(), "spy.log")
		env := []string{"PKCS11SPY=" + tok.ModulePath, "PKCS11SPY_OUTPUT=" + trace}
		for _, e := range env {
			k, v, _ := strings.Cut(e, "=")
			t.Setenv(k, v)
		}
		return Route{Name: name, ModulePath: spy, Env: env, Trace: trace, EdDSA: true}
	case "p11-kit-remote":
		client := firstExisting(t, "p11-kit's client module", "p11-kit-modules", p11kitClientPaths)
		addr := tok.ServeP11Kit(t)
		t.Setenv("P11_KIT_SERVER_ADDRESS", addr)
		return Route{Name: name, ModulePath: client, Env: []string{"P11_KIT_SERVER_ADDRESS=" + addr}}
	case DelayedForwarder:
		lib := tok.Forwarder(t, map[string]string{"DELAY_MS": "2"})
		env := []string{"SIGNERD_FWD_MODULE=" + tok.ModulePath, "SIGNERD_FWD_DELAY_MS=2"}
		return Route{Name: name, ModulePath: lib, Env: env, EdDSA: true}
	}
	t.Fatalf("unknown route %q (want one of %q or %q)", name, RouteNames, DelayedForwarder)
	return Route{}
}

// ServeP11Kit runs `p11-kit server` in the foreground, exporting the token
// from SoftHSM2's library on a Unix socket, until the test ends, and returns
// the address for P11_KIT_SERVER_ADDRESS.
func (tok *Token) ServeP11Kit(t testing.TB) string {
	t.Helper()
	if _, err := exec.LookPath("p11-kit"); err != nil {
		t.Fatalf("p11-kit is not installed; run `make deps` or apt-get install p11-kit: %v", err)
	}
	// Unix socket paths are limited to 108 bytes: t.TempDir can be longer.
	dir, err := os.MkdirTemp("", "p11kit-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	sock := filepath.Join(dir, "s")
	cmd := exec.Command("p11-kit", "server", "--foreground", "--provider", tok.ModulePath, "--name", sock,
		"pkcs11:token="+escapeURIValue(tok.Label))
	cmd.Env = append(os.Environ(), "SOFTHSM2_CONF="+tok.ConfPath)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatalf("start p11-kit server: %v", err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
	})
	// It prints the shell assignments once the socket listens.
	ready := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if v, ok := strings.CutPrefix(sc.Text(), "P11_KIT_SERVER_ADDRESS="); ok {
				v, _, _ = strings.Cut(v, ";")
				ready <- v
				break
			}
		}
		_, _ = io.Copy(io.Discard, stdout)
	}()
	select {
	case addr := <-ready:
		return addr
	case <-exited:
		t.Fatalf("p11-kit server exited: %s", stderr.String())
	case <-time.After(15 * time.Second):
		t.Fatalf("p11-kit server did not announce its socket: %s", stderr.String())
	}
	return ""
}

// escapeURIValue percent-encodes what RFC 7512 does not allow unescaped in
// a path attribute value.
func escapeURIValue(v string) string {
	var b strings.Builder
	for _, c := range []byte(v) {
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', strings.IndexByte("-._~", c) >= 0:
			b.WriteByte(c)
		default:
			fmt.Fprintf(&b, "%%%02X", c)
		}
	}
	return b.String()
}
