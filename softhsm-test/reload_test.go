package softhsmtest

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"

	"github.com/signerd/signerd/internal/service"
	"github.com/signerd/signerd/internal/testutil/certs"
)

// reloadRig is a signerd started from a config file alone (so that a
// reload reads everything a restart would), with a mutual-TLS listener and
// a test NOTIFY_SOCKET that says when each reload is done.
type reloadRig struct {
	*daemon
	ns                    *notifySocket
	confDir, policy       string
	certFile, keyFile, ca string
	reloads               int
}

func (r *reloadRig) writeConf(t *testing.T, logLevel string) {
	t.Helper()
	conf := fmt.Sprintf(`# written by TestReload
pkcs11-module = %s
token-label = %s
pin-file = %s
db = %s
socket = %s
log-level = %s
policy = %s
listen = 127.0.0.1:0
tls-cert = %s
tls-key = %s
client-ca = %s
`, r.tok.ModulePath, r.tok.Label, r.pinFile, r.db, r.socket, logLevel, r.policy, r.certFile, r.keyFile, r.ca)
	writeFile(t, r.confDir, "signerd.conf", []byte(conf))
}

// reload sends SIGHUP and waits until signerd says READY=1 again (after
// it wrote the reload's audit record), returning whether it applied it.
func (r *reloadRig) reload(t *testing.T) bool {
	t.Helper()
	applied, refused := strings.Count(r.logs.String(), "reload applied"), strings.Count(r.logs.String(), "reload refused")
	if err := r.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	if m := r.ns.next(t, func(m string) bool { return !strings.HasPrefix(m, "WATCHDOG") }); state(m) != "RELOADING=1" {
		t.Fatalf("after SIGHUP: %q, want RELOADING=1", m)
	}
	if m := r.ns.next(t, func(m string) bool { return !strings.HasPrefix(m, "WATCHDOG") }); state(m) != "READY=1" {
		t.Fatalf("after the reload: %q, want READY=1", m)
	}
	r.reloads++
	var a, f int
	// The log reaches the test through a pipe, possibly after READY=1.
	relWaitFor(t, "the reload's log line", 10*time.Second, func() bool {
		a, f = strings.Count(r.logs.String(), "reload applied"), strings.Count(r.logs.String(), "reload refused")
		return a+f > applied+refused
	})
	switch {
	case a == applied+1 && f == refused:
		return true
	case a == applied && f == refused+1:
		return false
	}
	t.Fatalf("one reload logged %d applied and %d refused:\n%s", a-applied, f-refused, r.logs.String())
	return false
}

func replaceFile(t *testing.T, path string, data []byte) {
	t.Helper()
	tmp := path + ".new"
	if err := os.WriteFile(tmp, data, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

// tlsConn is one client connection to the TLS listener; serial is the
// serial number of the certificate the server presented on it.
func tlsConn(t *testing.T, addr string, rootCA *x509.Certificate, client certs.Issued) (*grpc.ClientConn, func() (*big.Int, error)) {
	t.Helper()
	pair, err := tls.X509KeyPair(client.CertPEM, client.KeyPEM)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(rootCA)
	conn, err := grpc.NewClient("dns:///"+addr, grpc.WithTransportCredentials(credentials.NewTLS(&tls.Config{
		RootCAs: pool, Certificates: []tls.Certificate{pair}, MinVersion: tls.VersionTLS13,
	})))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	check := func() (*big.Int, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		var p peer.Peer
		if _, err := grpc_health_v1.NewHealthClient(conn).Check(ctx, &grpc_health_v1.HealthCheckRequest{}, grpc.Peer(&p)); err != nil {
			return nil, err
		}
		info, ok := p.AuthInfo.(credentials.TLSInfo)
		if !ok || len(info.State.PeerCertificates) == 0 {
			return nil, fmt.Errorf("no server certificate on the connection (%T)", p.AuthInfo)
		}
		return info.State.PeerCertificates[0].SerialNumber, nil
	}
	return conn, check
}

// TestReload: SIGHUP re-reads the policy file, the TLS certificate, key
// and client CA, and the log level, without a restart and without
// dropping established connections; a bad new file is refused with a log
// line and the old settings stay in force; every reload is audited.
func TestReload(t *testing.T) {
	d := newDaemon(t)
	ns := newNotifySocket(t)
	d.env = []string{"NOTIFY_SOCKET=" + ns.path}
	tlsDir := t.TempDir()
	ca := certs.NewCA(t, "signerd clients")
	ca2 := certs.NewCA(t, "next year's CA")
	srvA, srvB := ca.Server(t), ca.Server(t)
	farm := ca.Issue(t, certs.Leaf{CN: "build-farm"})
	farmFiles := farm.WriteFiles(t, tlsDir, "farm")
	farm2 := ca2.Issue(t, certs.Leaf{CN: "build-farm"})
	r := &reloadRig{daemon: d, ns: ns, confDir: t.TempDir()}
	files := srvA.WriteFiles(t, tlsDir, "server")
	r.certFile, r.keyFile = files.Cert, files.Key
	r.ca = ca.WriteFile(t, tlsDir, "client-ca.pem")
	r.policy = writePolicy(t, `{"version": 1, "rules": [{"uids": [0], "role": "admin"}]}`)
	r.writeConf(t, "info")
	d.spawn(t, bins.signerd, "--config", filepath.Join(r.confDir, "signerd.conf"))
	if m := ns.next(t, func(string) bool { return true }); state(m) != "READY=1" {
		t.Fatalf("first notification %q, want READY=1\n%s", m, d.logs.String())
	}
	addr := d.tcpAddr(t)
	asFarm := func(args ...string) result {
		return signctl(t, nil, append([]string{"--addr", addr, "--tls-cert", farmFiles.Cert, "--tls-key", farmFiles.Key, "--ca", r.ca}, args...)...)
	}
	mustSignctl(t, d, "key", "create", "release", "--algorithm", "ed25519")

	t.Run("policy", func(t *testing.T) {
		expectExit(t, asFarm("key", "list"), 4, "farm before the policy names it")
		replaceFile(t, r.policy, []byte(`{"version": 1, "rules": [{"uids": [0], "role": "admin"}, {"certs": ["build-farm"], "role": "signer", "keys": ["release"]}]}`))
		if !r.reload(t) {
			t.Fatalf("a valid policy was refused:\n%s", d.logs.String())
		}
		expectExit(t, asFarm("key", "list"), 0, "farm once the reloaded policy names it")

		replaceFile(t, r.policy, []byte(`{"version": 1, "rules": [{"certs": ["build-farm"], "role": "emperor"}]}`))
		if r.reload(t) {
			t.Fatal("an invalid policy was applied")
		}
		d.waitForLog(t, "reload refused; the settings in force stay")
		d.waitForLog(t, r.policy)
		expectExit(t, asFarm("key", "list"), 0, "farm after a refused policy (the old one stays)")
		expectExit(t, asFarm("key", "create", "k2", "--algorithm", "ed25519"), 4, "farm administering after a refused policy")
		mustSignctl(t, d, "key", "list") // uid 0 is still admin

		// A reload is all or nothing: the next ones need a valid policy.
		replaceFile(t, r.policy, []byte(`{"version": 1, "rules": [{"uids": [0], "role": "admin"}, {"certs": ["build-farm"], "role": "signer", "keys": ["release"]}]}`))
		if !r.reload(t) {
			t.Fatal("the repaired policy was refused")
		}
	})

	t.Run("log level", func(t *testing.T) {
		calls := func() int { return strings.Count(d.logs.String(), "msg=call ") }
		mustSignctl(t, d, "key", "list")
		if n := calls(); n != 0 {
			t.Fatalf("%d debug call lines at log-level info", n)
		}
		r.writeConf(t, "debug")
		if !r.reload(t) {
			t.Fatalf("log-level debug refused:\n%s", d.logs.String())
		}
		mustSignctl(t, d, "key", "list")
		d.waitForLog(t, "msg=call ")
		r.writeConf(t, "loud")
		if r.reload(t) {
			t.Fatal("log-level loud was applied")
		}
		d.waitForLog(t, `log-level \"loud\"`)
		before := calls()
		mustSignctl(t, d, "key", "list")
		relWaitFor(t, "a debug line for the call after a refused log level (debug stays in force)", 30*time.Second, func() bool {
			return calls() > before
		})
		r.writeConf(t, "info")
		if !r.reload(t) {
			t.Fatal("log-level info refused")
		}
	})

	t.Run("TLS certificate and client CA", func(t *testing.T) {
		_, established := tlsConn(t, addr, ca.Cert, farm)
		serial, err := established()
		if err != nil || serial.Cmp(srvA.Cert.SerialNumber) != 0 {
			t.Fatalf("before rotation: serial %v, err %v; want certificate A", serial, err)
		}
		_, fromCA2 := tlsConn(t, addr, ca.Cert, farm2)
		if _, err := fromCA2(); err == nil {
			t.Fatal("a client of a CA not yet trusted got in")
		}

		// Rotate the server certificate and add next year's CA.
		replaceFile(t, r.certFile, srvB.CertPEM)
		replaceFile(t, r.keyFile, srvB.KeyPEM)
		caPEM, err := os.ReadFile(r.ca)
		if err != nil {
			t.Fatal(err)
		}
		ca2PEM, err := os.ReadFile(ca2.WriteFile(t, t.TempDir(), "ca2.pem"))
		if err != nil {
			t.Fatal(err)
		}
		replaceFile(t, r.ca, append(caPEM, ca2PEM...))
		if !r.reload(t) {
			t.Fatalf("a valid certificate rotation was refused:\n%s", d.logs.String())
		}
		serial, err = established()
		if err != nil || serial.Cmp(srvA.Cert.SerialNumber) != 0 {
			t.Fatalf("the established connection after rotation: serial %v, err %v; want it kept, with certificate A", serial, err)
		}
		_, fresh := tlsConn(t, addr, ca.Cert, farm)
		if serial, err = fresh(); err != nil || serial.Cmp(srvB.Cert.SerialNumber) != 0 {
			t.Fatalf("a new connection after rotation: serial %v, err %v; want certificate B", serial, err)
		}
		_, fromCA2 = tlsConn(t, addr, ca.Cert, farm2)
		if _, err := fromCA2(); err != nil {
			t.Fatalf("a client of the newly added CA: %v", err)
		}

		// A key that does not match the certificate: refused, B stays.
		replaceFile(t, r.keyFile, srvA.KeyPEM)
		if r.reload(t) {
			t.Fatal("a certificate with the wrong key was applied")
		}
		d.waitForLog(t, "private key does not match public key")
		_, fresh = tlsConn(t, addr, ca.Cert, farm)
		if serial, err = fresh(); err != nil || serial.Cmp(srvB.Cert.SerialNumber) != 0 {
			t.Fatalf("a new connection after a refused rotation: serial %v, err %v; want certificate B still", serial, err)
		}
		// An unreadable client CA: refused too.
		replaceFile(t, r.keyFile, srvB.KeyPEM)
		replaceFile(t, r.ca, []byte("not a certificate"))
		if r.reload(t) {
			t.Fatal("a client CA file without certificates was applied")
		}
		_, fromCA2 = tlsConn(t, addr, ca.Cert, farm2)
		if _, err := fromCA2(); err != nil {
			t.Fatalf("after a refused client CA, the CAs in force should stay: %v", err)
		}

		// The old CA removed (as after its compromise): its client's
		// established connection is refused at its next call, the new
		// CA's clients go on.
		replaceFile(t, r.ca, ca2PEM)
		if !r.reload(t) {
			t.Fatalf("removing a client CA was refused:\n%s", d.logs.String())
		}
		if _, err := established(); status.Code(err) != codes.Unauthenticated {
			t.Fatalf("a call on the connection of the removed CA's client: %v, want UNAUTHENTICATED", err)
		}
		if _, err := fromCA2(); err != nil {
			t.Fatalf("the new CA's client after the old CA was removed: %v", err)
		}
	})

	recs := auditLog(t, d)
	var got []string
	starts := 0
	for _, rec := range recs {
		if rec.Operation == service.StartOperation {
			// The start names the authorization in force: the policy
			// file and its SHA-256, and the build.
			starts++
			if rec.Caller != "signerd" || !strings.Contains(rec.Detail, "policy "+r.policy+" (") || !strings.Contains(rec.Detail, "sha256 ") || !strings.Contains(rec.Detail, "revision") {
				t.Errorf("start record: caller %q, detail %q", rec.Caller, rec.Detail)
			}
		}
		if rec.Operation == service.ReloadOperation {
			if rec.Caller != "signerd" {
				t.Errorf("reload audited as caller %q, want signerd", rec.Caller)
			}
			got = append(got, rec.Outcome)
		}
	}
	if starts != 1 {
		t.Errorf("%d start records, want 1", starts)
	}
	want := []string{"ok", "refused", "ok", "ok", "refused", "ok", "ok", "refused", "refused", "ok"}
	if len(got) != r.reloads || strings.Join(got, " ") != strings.Join(want, " ") {
		t.Fatalf("audited reloads %v (%d SIGHUPs), want %v", got, r.reloads, want)
	}
}
