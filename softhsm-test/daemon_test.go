package softhsmtest

import (
	"encoding/hex"
	"encoding/json"
	"errors"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/signerd/signerd/internal/testutil/softhsm"
)

// TestStartupErrors: a wrong module, token label or PIN stops signerd with
// a message that says what is wrong and never shows the PIN.
func TestStartupErrors(t *testing.T) {
	tok := softhsm.NewToken(t)
	dir := t.TempDir()
	pinFile := tok.WritePINFile(t)
	wrongPIN := filepath.Join(dir, "wrong-pin")
	os.WriteFile(wrongPIN, []byte("0000wrong9999\n"), 0o600)
	loosePIN := filepath.Join(dir, "loose-pin")
	os.WriteFile(loosePIN, []byte(tok.PIN), 0o644)
	os.Chmod(loosePIN, 0o644)
	base := func(module, label, pin string) []string {
		return []string{"--pkcs11-module", module, "--token-label", label, "--pin-file", pin,
			"--db", filepath.Join(t.TempDir(), "db"), "--socket", filepath.Join(t.TempDir(), "s.sock")}
	}
	// What the configuration names, taken by others: a live signerd's
	// socket, a TCP port, and TLS material that is not there.
	taken := startDaemon(t)
	port, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer port.Close()
	// An etcd nobody serves: a port just given back, not etcd's usual
	// 2379, where a developer's own etcd may be listening.
	free, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	noEtcd := "etcd:http://" + free.Addr().String()
	free.Close()
	certs := filepath.Join(dir, "nosuch.pem")
	tests := []struct {
		name     string
		args     []string
		env      []string
		contains string
	}{
		{"socket in use", append(base(tok.ModulePath, tok.Label, pinFile)[:6], "--db", filepath.Join(t.TempDir(), "db"), "--socket", taken.socket), nil, "in use"},
		{"TCP port in use", append(base(tok.ModulePath, tok.Label, pinFile), "--listen", port.Addr().String(), "--insecure-loopback"), nil, "address already in use"},
		{"unreadable TLS certificate", append(base(tok.ModulePath, tok.Label, pinFile), "--listen", "127.0.0.1:0", "--tls-cert", certs, "--tls-key", certs, "--client-ca", certs), nil, certs},
		{"metrics port in use", append(base(tok.ModulePath, tok.Label, pinFile), "--metrics-listen", port.Addr().String()), nil, "--metrics-listen"},
		{"missing module", base("/nonexistent/libpkcs11.so", tok.Label, pinFile), nil, "/nonexistent/libpkcs11.so"},
		{"wrong token label", base(tok.ModulePath, "no-such-token", pinFile), nil, "no-such-token"},
		{"wrong PIN", base(tok.ModulePath, tok.Label, wrongPIN), nil, "PIN"},
		{"world-readable PIN file", base(tok.ModulePath, tok.Label, loosePIN), nil, "chmod 600"},
		{"no PIN", []string{"--pkcs11-module", tok.ModulePath, "--token-label", tok.Label, "--db", filepath.Join(dir, "db2"), "--socket", filepath.Join(dir, "s2.sock")}, nil, "SIGNERD_PIN"},
		{"PIN as a flag is refused", append(base(tok.ModulePath, tok.Label, pinFile), "--pin", tok.PIN), nil, "unknown flag"},
		{"bad socket mode", append(base(tok.ModulePath, tok.Label, pinFile), "--socket-mode", "999"), nil, "octal"},
		{"etcd store", append(base(tok.ModulePath, tok.Label, pinFile)[:6], "--socket", filepath.Join(t.TempDir(), "s.sock"), "--store", noEtcd), nil, "etcd"},
		{"--db and --store", append(base(tok.ModulePath, tok.Label, pinFile), "--store", "bbolt:"+filepath.Join(t.TempDir(), "other.db")), nil, "--db and --store both given"},
		{"profiler without a metrics address", append(base(tok.ModulePath, tok.Label, pinFile), "--metrics-pprof"), nil, "--metrics-pprof needs --metrics-listen"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cmd := exec.Command(bins.signerd, tt.args...)
			cmd.Env = append(append(os.Environ(), "SOFTHSM2_CONF="+tok.ConfPath), tt.env...)
			done := make(chan struct{})
			var out []byte
			var err error
			go func() { out, err = cmd.CombinedOutput(); close(done) }()
			select {
			case <-done:
			case <-time.After(20 * time.Second):
				cmd.Process.Kill()
				t.Fatal("signerd did not exit")
			}
			if err == nil {
				t.Fatalf("signerd started:\n%s", out)
			}
			if !strings.Contains(string(out), tt.contains) {
				t.Fatalf("error does not mention %q:\n%s", tt.contains, out)
			}
			if tt.name != "PIN as a flag is refused" && strings.Contains(string(out), tok.PIN) {
				t.Fatalf("output contains the PIN:\n%s", out)
			}
			// A start that fails leaves no database or journal behind
			// (one it created before the HSM refused is removed).
			if i := slices.Index(tt.args, "--db"); i >= 0 {
				for _, p := range []string{tt.args[i+1], tt.args[i+1] + ".journal"} {
					if _, err := os.Stat(p); !errors.Is(err, fs.ErrNotExist) {
						t.Fatalf("a failed start left %s behind (%v)", p, err)
					}
				}
			}
		})
	}
	// Nor keys in the token: every start above failed before making the
	// audit and log keys (SoftHSM2 keeps each object in a file of its own
	// beside the token's token.object).
	objects, err := filepath.Glob(filepath.Join(tok.Dir, "tokens", "*", "*.object"))
	if err != nil {
		t.Fatal(err)
	}
	if objects = slices.DeleteFunc(objects, func(p string) bool { return filepath.Base(p) == "token.object" }); len(objects) > 0 {
		t.Fatalf("failed starts left %d objects in the token: %v", len(objects), objects)
	}
}

// TestDaemonHygiene: socket and database modes, the PIN absent from argv
// and logs, keys non-extractable in the token, SIGTERM exits 0 and removes
// the socket.
func TestDaemonHygiene(t *testing.T) {
	d := startDaemon(t)
	st, err := os.Stat(d.socket)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode()&os.ModeSocket == 0 || st.Mode().Perm() != 0o660 {
		t.Fatalf("socket mode %v, want socket 0660", st.Mode())
	}
	if st, err := os.Stat(d.db); err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("database mode %v %v, want 0600", st.Mode(), err)
	}
	cmdline, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(d.cmd.Process.Pid), "cmdline"))
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(cmdline), d.tok.PIN) {
		t.Fatal("the PIN is in signerd's argv")
	}

	var keys []map[string]any
	mustSignctl(t, d, "key", "create", "ed", "--algorithm", "ed25519")
	mustSignctl(t, d, "key", "create", "ec", "--algorithm", "ecdsa-p256")
	if err := json.Unmarshal([]byte(mustSignctl(t, d, "key", "list", "-o", "json").stdout), &keys); err != nil {
		t.Fatal(err)
	}
	for _, k := range keys {
		v := k["versions"].([]any)[0].(map[string]any)
		id, err := hex.DecodeString(v["cka_id"].(string))
		if err != nil || len(id) == 0 {
			t.Fatalf("key %v has no CKA_ID", k["name"])
		}
		sensitive, extractable, private, token := d.tok.PrivateKeyAttributes(t, id)
		if !sensitive || extractable || !private || !token {
			t.Fatalf("key %v: sensitive=%t extractable=%t private=%t token=%t", k["name"], sensitive, extractable, private, token)
		}
		if err := d.tok.ReadPrivateValue(t, id); err == nil {
			t.Fatalf("key %v: the token released CKA_VALUE", k["name"])
		}
		requireSignOnly(t, d, k)
	}

	if err := d.stop(t); err != nil {
		t.Fatalf("SIGTERM: signerd exited with %v\n%s", err, d.logs.String())
	}
	if _, err := os.Stat(d.socket); !os.IsNotExist(err) {
		t.Fatalf("socket left behind after stop: %v", err)
	}
	if strings.Contains(d.logs.String(), d.tok.PIN) {
		t.Fatal("the PIN is in signerd's logs")
	}
	if !strings.Contains(d.logs.String(), "signerd stopped") {
		t.Fatalf("no orderly stop in the logs:\n%s", d.logs.String())
	}
	// State survives a restart.
	d.start(t)
	if r := mustSignctl(t, d, "key", "list", "-o", "json"); !strings.Contains(r.stdout, `"ed"`) {
		t.Fatalf("keys lost across restart: %s", r.stdout)
	}
	mustSignctl(t, d, "sign", writeFile(t, t.TempDir(), "a.so", []byte("a")), "--key", "ed")
}

// TestSecondDaemonRefused: two daemons cannot share a socket or database.
func TestSecondDaemonRefused(t *testing.T) {
	d := startDaemon(t)
	cmd := exec.Command(bins.signerd, d.args()...)
	cmd.Env = append(os.Environ(), "SOFTHSM2_CONF="+d.tok.ConfPath)
	out, err := cmd.CombinedOutput()
	if err == nil || !(strings.Contains(string(out), "in use") || strings.Contains(string(out), "another")) {
		t.Fatalf("second signerd: %v\n%s", err, out)
	}
	if !d.healthy() {
		t.Fatal("the first daemon was disturbed")
	}
}
