package softhsmtest

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/health/grpc_health_v1"

	"github.com/signerd/signerd/internal/store"
	"github.com/signerd/signerd/internal/store/boltstore"
	"github.com/signerd/signerd/internal/testutil/certs"
	"github.com/signerd/signerd/internal/testutil/softhsm"
)

// nobody is the second uid the authorization tests run signctl as.
const nobodyID, nobodyUID, nobodyGID = "uid:65534", 65534, 65534

// needRoot skips a test that must run signctl under another uid.
func needRoot(t *testing.T, guarantee string) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skipf("UNTESTED without root: %s. The check acts as a second uid (nobody) or drops a capability, which needs root: run the suite as root (as `make test` in CI does)", guarantee)
	}
}

// traversable makes every directory from path's parent up to the system
// temp dir searchable by others, so a second uid can reach path.
func traversable(t *testing.T, path string) {
	t.Helper()
	top := filepath.Clean(os.TempDir())
	for dir := filepath.Dir(path); dir != top && dir != "/" && dir != "."; dir = filepath.Dir(dir) {
		if err := os.Chmod(dir, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	// The signctl binary lives in TestMain's private temp dir.
	if err := os.Chmod(filepath.Dir(bins.signctl), 0o755); err != nil {
		t.Fatal(err)
	}
}

// nobodyDir is a directory owned by nobody, reachable by nobody.
func nobodyDir(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	traversable(t, filepath.Join(dir, "x"))
	chownTree(t, dir)
	return dir
}

func chownTree(t *testing.T, root string) {
	t.Helper()
	err := filepath.Walk(root, func(p string, _ os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		return os.Lchown(p, nobodyUID, nobodyGID)
	})
	if err != nil {
		t.Fatal(err)
	}
}

// signctlAsNobody runs the real signctl under uid/gid 65534 against d's
// socket.
func signctlAsNobody(t *testing.T, d *daemon, args ...string) result {
	t.Helper()
	cmd := exec.Command(bins.signctl, args...)
	cmd.Env = append(os.Environ(), "SIGNCTL_SOCKET="+d.socket, "HOME=/")
	cmd.Dir = "/"
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: nobodyUID, Gid: nobodyGID}}
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

// packageForNobody makes d's socket and a package signed by key "release",
// which org acme trusts, reachable by uid 65534, and returns the package.
func packageForNobody(t *testing.T, d *daemon) string {
	t.Helper()
	traversable(t, d.socket)
	mustSignctl(t, d, "key", "create", "release", "--algorithm", "ed25519")
	mustSignctl(t, d, "trust", "add", "--org", "acme", "--key", "release")
	work := t.TempDir()
	traversable(t, filepath.Join(work, "x"))
	pkg := writeFile(t, work, "libworkflow.so", []byte("a package"))
	mustSignctl(t, d, "sign", pkg, "--key", "release")
	return pkg
}

// expectExit fails unless r exited with code.
func expectExit(t *testing.T, r result, code int, what string) {
	t.Helper()
	if r.code != code {
		t.Fatalf("%s: exit %d, want %d\nstdout: %s\nstderr: %s", what, r.code, code, r.stdout, r.stderr)
	}
	if code == 4 && !strings.Contains(strings.ToLower(r.stderr), "permission denied") && !strings.Contains(r.stderr, "PERMISSION_DENIED") {
		t.Errorf("%s: exit 4 without saying permission denied: %s", what, r.stderr)
	}
}

// auditLog stops d and reads its audit log from a read-only copy of the
// database.
func auditLog(t *testing.T, d *daemon) []store.AuditRecord {
	t.Helper()
	if err := d.stop(t); err != nil {
		t.Fatalf("stop: %v\n%s", err, d.logs.String())
	}
	b, err := os.ReadFile(d.db)
	if err != nil {
		t.Fatal(err)
	}
	cp := writeFile(t, t.TempDir(), "copy.db", b)
	st, err := boltstore.Open(context.Background(), cp, boltstore.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	recs, err := st.ListAudit(context.Background(), 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	return recs
}

// wantDenial fails unless recs hold a denial of operation (a substring of
// the method) to caller whose detail contains every one of details.
func wantDenial(t *testing.T, recs []store.AuditRecord, caller, operation string, details ...string) {
	t.Helper()
next:
	for _, r := range recs {
		if r.Outcome != "denied" || r.Caller != caller || !strings.Contains(r.Operation, operation) {
			continue
		}
		for _, d := range details {
			if !strings.Contains(r.Detail, d) {
				continue next
			}
		}
		return
	}
	var seen []string
	for _, r := range recs {
		seen = append(seen, r.Caller+" "+r.Operation+" "+r.Outcome+" "+r.Detail)
	}
	t.Errorf("no audited denial of %s to %s mentioning %q; audit log:\n%s", operation, caller, details, strings.Join(seen, "\n"))
}

func writePolicy(t *testing.T, body string) string {
	t.Helper()
	return writeFile(t, t.TempDir(), "policy.json", []byte(body))
}

// TestSecondUIDDefaultRule: without a policy file, a second uid that can
// reach the socket may verify and read, but not sign or administer; each
// refusal exits 4 and is audited.
func TestSecondUIDDefaultRule(t *testing.T) {
	needRoot(t, "without a policy file, a second uid may verify and read but not sign or administer, and each refusal is audited")
	d := startDaemon(t, "--socket-mode", "0666")
	pkg := packageForNobody(t, d)
	work := filepath.Dir(pkg)

	expectExit(t, signctlAsNobody(t, d, "verify", pkg, "--org", "acme"), 0, "nobody verifies")
	expectExit(t, signctlAsNobody(t, d, "trust", "list", "--org", "acme"), 0, "nobody lists trust")
	expectExit(t, signctlAsNobody(t, d, "key", "list"), 0, "nobody lists keys")
	expectExit(t, signctlAsNobody(t, d, "key", "public", "release"), 0, "nobody exports a public key")

	// A place nobody may write, so that what refuses the signature is the
	// daemon (signctl checks the output's place before it asks).
	out := filepath.Join(work, "out")
	if err := os.Mkdir(out, 0o777); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(out, 0o777); err != nil {
		t.Fatal(err)
	}
	expectExit(t, signctlAsNobody(t, d, "sign", pkg, "--key", "release", "--out", filepath.Join(out, "nobody.sig")), 4, "nobody signs")
	expectExit(t, signctlAsNobody(t, d, "key", "create", "mine", "--algorithm", "ed25519"), 4, "nobody creates a key")
	expectExit(t, signctlAsNobody(t, d, "trust", "remove", "--org", "acme", "--fingerprint", strings.Repeat("ab", 32)), 4, "nobody removes trust")
	expectExit(t, signctlAsNobody(t, d, "policy", "set", "--org", "acme", "--require-signatures=true"), 4, "nobody sets policy")
	if _, err := os.Stat(filepath.Join(out, "nobody.sig")); !os.IsNotExist(err) {
		t.Fatalf("a denied sign wrote a signature: %v", err)
	}

	recs := auditLog(t, d)
	wantDenial(t, recs, nobodyID, "/signer.v1.SignerService/Sign", "needs role signer")
	wantDenial(t, recs, nobodyID, "/signer.v1.KeyService/CreateKey", "needs role admin")
	wantDenial(t, recs, nobodyID, "/signer.v1.TrustService/RemoveTrust")
	wantDenial(t, recs, nobodyID, "/signer.v1.TrustService/SetPolicy")
	for _, r := range recs {
		if r.Caller == nobodyID && r.Outcome == "ok" && strings.Contains(r.Operation, "sign") {
			t.Errorf("nobody has a successful signing record: %+v", r)
		}
	}
}

// TestPolicyFileUIDSigner: a policy file makes the second uid a signer
// limited to named keys and, for skills, a named domain.
func TestPolicyFileUIDSigner(t *testing.T) {
	needRoot(t, "a policy file limits a second uid's signing to named keys and domains")
	policy := writePolicy(t, `{
  "version": 1,
  "rules": [
    {"comment": "operators", "uids": [0], "role": "admin"},
    {"comment": "CI", "uids": [65534], "role": "signer", "keys": ["pkg-a", "skill-a", "skill-b"], "domains": ["example.com"]},
    {"everyone_local": true, "role": "verifier"}
  ]
}`)
	d := startDaemon(t, "--socket-mode", "0666", "--policy", policy)
	traversable(t, d.socket)
	if !strings.Contains(d.logs.String(), "authorization by policy file") {
		t.Fatalf("the daemon does not say it uses the policy file:\n%s", d.logs.String())
	}
	mustSignctl(t, d, "key", "create", "pkg-a", "--algorithm", "ed25519")
	mustSignctl(t, d, "key", "create", "pkg-b", "--algorithm", "ed25519")
	mustSignctl(t, d, "key", "create", "skill-a", "--algorithm", "ecdsa-p256", "--org", "example.com")
	mustSignctl(t, d, "key", "create", "skill-c", "--algorithm", "ecdsa-p256", "--org", "example.com")
	mustSignctl(t, d, "trust", "add", "--org", "acme", "--key", "pkg-a")

	work := nobodyDir(t)
	pkg := writeFile(t, work, "lib.so", []byte("built by CI"))
	chownTree(t, work)
	expectExit(t, signctlAsNobody(t, d, "sign", pkg, "--key", "pkg-a"), 0, "signer signs with key A")
	expectExit(t, signctlAsNobody(t, d, "verify", pkg, "--org", "acme"), 0, "the signature verifies")
	expectExit(t, signctlAsNobody(t, d, "sign", pkg, "--key", "pkg-b", "--out", filepath.Join(work, "b.sig")), 4, "signer signs with key B")

	skillDir := makeSkill(t)
	traversable(t, skillDir)
	chownTree(t, skillDir)
	expectExit(t, signctlAsNobody(t, d, "skill", "sign", skillDir, "--key", "skill-a", "--domain", "example.com"), 0, "skill for domain D")
	expectExit(t, signctlAsNobody(t, d, "skill", "sign", skillDir, "--key", "skill-a", "--domain", "other.org"), 4, "skill for another domain")
	expectExit(t, signctlAsNobody(t, d, "skill", "sign", skillDir, "--key", "skill-c", "--domain", "example.com"), 4, "skill with an unlisted key")
	expectExit(t, signctlAsNobody(t, d, "key", "create", "mine", "--algorithm", "ed25519"), 4, "signer creates a key")

	recs := auditLog(t, d)
	wantDenial(t, recs, nobodyID, "/signer.v1.SignerService/Sign", `key "pkg-b"`)
	wantDenial(t, recs, nobodyID, "/signer.v1.SkillService/SignSkill", `domain "other.org"`)
	wantDenial(t, recs, nobodyID, "/signer.v1.SkillService/SignSkill", `key "skill-c"`)
	wantDenial(t, recs, nobodyID, "/signer.v1.KeyService/CreateKey", "needs role admin")
	signed := false
	for _, r := range recs {
		if r.Caller == nobodyID && r.Outcome == "ok" && strings.HasPrefix(r.Key, "pkg-a@") {
			signed = true
		}
	}
	if !signed {
		t.Error("no audit record of nobody's signature with pkg-a")
	}
}

var tcpAddrRE = regexp.MustCompile(`tcp_addr=(\S+)`)

// tcpAddr is the address the daemon's TCP listener bound. It waits for
// the log line: stderr reaches d.logs through a pipe copier, so a READY=1
// datagram can arrive before the lines the daemon logged ahead of it.
func (d *daemon) tcpAddr(t *testing.T) string {
	t.Helper()
	d.waitForLog(t, "tcp_addr=")
	m := tcpAddrRE.FindStringSubmatch(d.logs.String())
	if m == nil {
		t.Fatalf("no tcp_addr in the daemon's log:\n%s", d.logs.String())
	}
	return m[1]
}

// waitForLog waits until the daemon's log contains s.
func (d *daemon) waitForLog(t *testing.T, s string) {
	t.Helper()
	// Generous: this bounds a wait on a loaded machine, it times nothing.
	deadline := time.Now().Add(30 * time.Second)
	for !strings.Contains(d.logs.String(), s) {
		if time.Now().After(deadline) {
			t.Fatalf("the daemon's log never said %q:\n%s", s, d.logs.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestMutualTLS: on TCP only clients with a valid certificate from
// --client-ca get in; the certificate's names are the identity the policy
// file maps to roles, with the same key and domain limits as on the socket.
func TestMutualTLS(t *testing.T) {
	dir := t.TempDir()
	ca := certs.NewCA(t, "signerd clients")
	other := certs.NewCA(t, "another CA")
	caFile := ca.WriteFile(t, dir, "ca.pem")
	otherCAFile := other.WriteFile(t, dir, "other-ca.pem")
	srv := ca.Server(t).WriteFiles(t, dir, "server")
	farm := ca.Issue(t, certs.Leaf{CN: "build-farm", DNS: []string{"build-farm.example.com"}}).WriteFiles(t, dir, "farm")
	loaderCert := ca.Issue(t, certs.Leaf{CN: "loader"}).WriteFiles(t, dir, "loader")
	stranger := ca.Issue(t, certs.Leaf{CN: "stranger"}).WriteFiles(t, dir, "stranger")
	// The signer's name as its CN, beside a SAN of its own: the CN names
	// nothing there (RFC 6125).
	cnBeside := ca.Issue(t, certs.Leaf{CN: "build-farm.example.com", DNS: []string{"other.example.com"}}).WriteFiles(t, dir, "cnbeside")
	cnBesideIP := ca.Issue(t, certs.Leaf{CN: "build-farm.example.com", IPs: []net.IP{net.IPv4(10, 0, 0, 7)}}).WriteFiles(t, dir, "cnbesideip")
	foreign := other.Issue(t, certs.Leaf{CN: "build-farm", DNS: []string{"build-farm.example.com"}}).WriteFiles(t, dir, "foreign")
	expired := ca.Issue(t, certs.Leaf{CN: "build-farm", DNS: []string{"build-farm.example.com"},
		NotBefore: time.Now().Add(-72 * time.Hour), NotAfter: time.Now().Add(-24 * time.Hour)}).WriteFiles(t, dir, "expired")

	policy := writePolicy(t, `{"version": 1, "rules": [
  {"uids": [0], "role": "admin"},
  {"certs": ["build-farm.example.com"], "role": "signer", "keys": ["pkg-a", "skill-a"], "domains": ["example.com"]},
  {"certs": ["loader"], "role": "verifier"}
]}`)
	d := startDaemon(t, "--listen", "127.0.0.1:0", "--tls-cert", srv.Cert, "--tls-key", srv.Key, "--client-ca", caFile, "--policy", policy)
	addr := d.tcpAddr(t)
	if !strings.Contains(d.logs.String(), "mutual_tls=true") {
		t.Fatalf("the TCP listener is not reported as mutual TLS:\n%s", d.logs.String())
	}
	mustSignctl(t, d, "key", "create", "pkg-a", "--algorithm", "ed25519")
	mustSignctl(t, d, "key", "create", "pkg-b", "--algorithm", "ed25519")
	mustSignctl(t, d, "key", "create", "skill-a", "--algorithm", "ecdsa-p256", "--org", "example.com")
	mustSignctl(t, d, "trust", "add", "--org", "acme", "--key", "pkg-a")

	as := func(f certs.Files, args ...string) result {
		return signctl(t, nil, append([]string{"--addr", addr, "--tls-cert", f.Cert, "--tls-key", f.Key, "--ca", caFile}, args...)...)
	}
	work := t.TempDir()
	pkg := writeFile(t, work, "lib.so", []byte("from the farm"))

	t.Run("signer certificate", func(t *testing.T) {
		expectExit(t, as(farm, "key", "list"), 0, "farm lists keys")
		expectExit(t, as(farm, "sign", pkg, "--key", "pkg-a"), 0, "farm signs with key A")
		expectExit(t, as(farm, "sign", pkg, "--key", "pkg-b", "--out", filepath.Join(work, "b.sig")), 4, "farm signs with key B")
		// Several files go over one SignBatch stream: each item is held to
		// the same key limit.
		batch := []string{writeFile(t, work, "one.so", []byte("1")), writeFile(t, work, "two.so", []byte("2"))}
		expectExit(t, as(farm, append([]string{"sign", "--key", "pkg-a"}, batch...)...), 0, "farm batch-signs with key A")
		expectExit(t, as(farm, append([]string{"sign", "--key", "pkg-b"}, batch...)...), 4, "farm batch-signs with key B")
		skillDir := makeSkill(t)
		expectExit(t, as(farm, "skill", "sign", skillDir, "--key", "skill-a", "--domain", "example.com"), 0, "farm signs a skill for its domain")
		expectExit(t, as(farm, "skill", "sign", skillDir, "--key", "skill-a", "--domain", "evil.example"), 4, "farm signs a skill for another domain")
		expectExit(t, as(farm, "key", "create", "farm-key", "--algorithm", "ed25519"), 4, "farm creates a key")
	})
	t.Run("verifier certificate", func(t *testing.T) {
		expectExit(t, as(loaderCert, "verify", pkg, "--org", "acme"), 0, "loader verifies")
		expectExit(t, as(loaderCert, "sign", pkg, "--key", "pkg-a", "--out", filepath.Join(work, "l.sig")), 4, "loader signs")
	})
	t.Run("certificate no rule names", func(t *testing.T) {
		expectExit(t, as(stranger, "key", "list"), 4, "stranger lists keys")
	})
	t.Run("a rule's name as the CN beside a SAN", func(t *testing.T) {
		expectExit(t, as(cnBeside, "sign", pkg, "--key", "pkg-a", "--out", filepath.Join(work, "cn.sig")), 4, "a certificate for other.example.com with CN build-farm.example.com signs")
		expectExit(t, as(cnBesideIP, "sign", pkg, "--key", "pkg-a", "--out", filepath.Join(work, "cnip.sig")), 4, "a certificate for 10.0.0.7 with CN build-farm.example.com signs")
	})
	t.Run("--addr wins over --socket", func(t *testing.T) {
		r := signctl(t, d, "--socket", d.socket, "--addr", addr, "--tls-cert", stranger.Cert, "--tls-key", stranger.Key, "--ca", caFile, "key", "list")
		expectExit(t, r, 4, "stranger with both --socket and --addr")
	})

	// Refused at the handshake: never a call, so never a role.
	refused := func(t *testing.T, r result, logSays string) {
		t.Helper()
		if r.code == 0 || r.code == 4 {
			t.Fatalf("exit %d, want a refused connection (3)\nstdout: %s\nstderr: %s", r.code, r.stdout, r.stderr)
		}
		d.waitForLog(t, logSays)
	}
	t.Run("certificate from another CA", func(t *testing.T) {
		r := as(foreign, "key", "list")
		refused(t, r, "TLS handshake refused")
		// Said as what it is when the client read the server's alert (it
		// may instead find the connection closed under its first write).
		if strings.Contains(r.stderr, "remote error: tls") && !strings.Contains(r.stderr, "refused this client's TLS certificate") {
			t.Fatalf("stderr %q", r.stderr)
		}
	})
	t.Run("expired certificate", func(t *testing.T) {
		refused(t, as(expired, "key", "list"), "expired")
	})
	t.Run("wrong server CA on the client", func(t *testing.T) {
		r := signctl(t, nil, "--addr", addr, "--tls-cert", farm.Cert, "--tls-key", farm.Key, "--ca", otherCAFile, "key", "list")
		if r.code != 3 || !strings.Contains(r.stderr, "certificate") {
			t.Fatalf("client distrusting the server: exit %d\n%s", r.code, r.stderr)
		}
	})
	t.Run("no client certificate", func(t *testing.T) {
		pool := x509.NewCertPool()
		pool.AddCert(ca.Cert)
		conn, err := grpc.NewClient("dns:///"+addr, grpc.WithTransportCredentials(credentials.NewTLS(&tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS13})))
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if _, err := grpc_health_v1.NewHealthClient(conn).Check(ctx, &grpc_health_v1.HealthCheckRequest{}); err == nil {
			t.Fatal("a client without a certificate was served")
		}
		d.waitForLog(t, "didn't provide a certificate")
	})
	t.Run("signctl without a certificate", func(t *testing.T) {
		r := signctl(t, nil, "--addr", addr, "--ca", caFile, "key", "list")
		if r.code != 2 || !strings.Contains(r.stderr, "--tls-cert") {
			t.Fatalf("--ca alone: exit %d\n%s", r.code, r.stderr)
		}
	})
	t.Run("plaintext client", func(t *testing.T) {
		r := signctl(t, nil, "--addr", addr, "key", "list")
		if r.code == 0 || r.code == 4 {
			t.Fatalf("plaintext to the TLS port: exit %d\n%s", r.code, r.stderr)
		}
	})

	recs := auditLog(t, d)
	farmID := "cert:build-farm.example.com"
	wantDenial(t, recs, farmID, "/signer.v1.SignerService/Sign", `key "pkg-b"`)
	wantDenial(t, recs, farmID, "/signer.v1.SignerService/SignBatch", `key "pkg-b"`)
	wantDenial(t, recs, farmID, "/signer.v1.SkillService/SignSkill", `domain "evil.example"`)
	wantDenial(t, recs, farmID, "/signer.v1.KeyService/CreateKey")
	wantDenial(t, recs, "cert:loader", "/signer.v1.SignerService/Sign")
	wantDenial(t, recs, "cert:stranger", "/signer.v1.KeyService/ListKeys", "no policy rule matches")
	for _, r := range recs {
		if r.Outcome == "ok" && strings.HasPrefix(r.Key, "pkg-a@") && r.Caller == farmID {
			return
		}
	}
	t.Errorf("no audit record of the farm's signature with pkg-a")
}

// TestInsecureLoopback: plaintext TCP on loopback, with the explicit flag,
// gives the identity tcp-loopback, which may verify but not sign by default.
func TestInsecureLoopback(t *testing.T) {
	d := startDaemon(t, "--listen", "127.0.0.1:0", "--insecure-loopback")
	addr := d.tcpAddr(t)
	if !strings.Contains(d.logs.String(), "mutual_tls=false") {
		t.Fatalf("plaintext listener not reported:\n%s", d.logs.String())
	}
	mustSignctl(t, d, "key", "create", "release", "--algorithm", "ed25519")
	mustSignctl(t, d, "trust", "add", "--org", "acme", "--key", "release")
	pkg := writeFile(t, t.TempDir(), "lib.so", []byte("x"))
	mustSignctl(t, d, "sign", pkg, "--key", "release")

	expectExit(t, signctl(t, nil, "--addr", addr, "verify", pkg, "--org", "acme"), 0, "loopback verifies")
	expectExit(t, signctl(t, nil, "--addr", addr, "key", "list"), 0, "loopback lists keys")
	expectExit(t, signctl(t, nil, "--addr", addr, "sign", pkg, "--key", "release", "--out", pkg+".2.sig"), 4, "loopback signs")
	expectExit(t, signctl(t, nil, "--addr", addr, "key", "create", "k2", "--algorithm", "ed25519"), 4, "loopback creates a key")
	// SIGNCTL_ADDR from the environment gives way to an explicit --socket.
	cmd := exec.Command(bins.signctl, "--socket", d.socket, "key", "create", "k3", "--algorithm", "ed25519")
	cmd.Env = append(os.Environ(), "SIGNCTL_ADDR="+addr)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("--socket with SIGNCTL_ADDR set: %v\n%s", err, out)
	}

	recs := auditLog(t, d)
	wantDenial(t, recs, "tcp-loopback", "/signer.v1.SignerService/Sign")
	wantDenial(t, recs, "tcp-loopback", "/signer.v1.KeyService/CreateKey")
}

// TestTCPAndPolicyStartupErrors: signerd refuses to start a plaintext TCP
// listener off loopback, a TLS listener without a client CA, and a policy
// file that does not validate, saying why.
func TestTCPAndPolicyStartupErrors(t *testing.T) {
	module := softhsm.ModulePath(t)
	dir := t.TempDir()
	pin := writeFile(t, dir, "pin", []byte("1234"))
	os.Chmod(pin, 0o600)
	ca := certs.NewCA(t, "ca")
	srv := ca.Server(t).WriteFiles(t, dir, "server")
	caFile := ca.WriteFile(t, dir, "ca.pem")
	badPolicy := writeFile(t, dir, "bad-policy.json", []byte(`{"version": 1, "rules": [
  {"uids": [0], "role": "admin"},
  {"uids": [1000], "role": "root"}
]}`))
	unknownField := writeFile(t, dir, "unknown.json", []byte(`{"version": 1, "rules": [{"uid": [0], "role": "admin"}]}`))
	signerNoKeys := writeFile(t, dir, "nokeys.json", []byte(`{"version": 1, "rules": [{"uids": [1000], "role": "signer"}]}`))
	base := []string{"--pkcs11-module", module, "--token-label", "unused", "--pin-file", pin,
		"--db", filepath.Join(dir, "db"), "--socket", filepath.Join(dir, "s.sock")}
	tests := []struct {
		name     string
		args     []string
		contains string
	}{
		{"plaintext on every interface", []string{"--listen", "0.0.0.0:0", "--insecure-loopback"}, "refusing plaintext TCP on 0.0.0.0:0"},
		{"plaintext on loopback without the flag", []string{"--listen", "127.0.0.1:0"}, "--insecure-loopback"},
		{"TLS without a client CA", []string{"--listen", "127.0.0.1:0", "--tls-cert", srv.Cert, "--tls-key", srv.Key}, "without --client-ca"},
		{"TLS without a key", []string{"--listen", "127.0.0.1:0", "--tls-cert", srv.Cert, "--client-ca", caFile}, "--tls-key"},
		{"TLS flags without --listen", []string{"--tls-cert", srv.Cert, "--tls-key", srv.Key, "--client-ca", caFile}, "no --listen"},
		{"policy with an unknown role", []string{"--policy", badPolicy}, `rules[1]: role "root" is unknown`},
		{"policy with an unknown field", []string{"--policy", unknownField}, `rules[0]: unknown field "uid"`},
		{"signer without keys", []string{"--policy", signerNoKeys}, `rules[0]: a signer rule needs "keys"`},
		{"missing policy file", []string{"--policy", filepath.Join(dir, "missing.json")}, "missing.json"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cmd := exec.Command(bins.signerd, append(append([]string{}, base...), tt.args...)...)
			var out bytes.Buffer
			cmd.Stdout, cmd.Stderr = &out, &out
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			done := make(chan error, 1)
			go func() { done <- cmd.Wait() }()
			select {
			case err := <-done:
				if err == nil {
					t.Fatalf("signerd started:\n%s", out.String())
				}
			case <-time.After(20 * time.Second):
				cmd.Process.Kill()
				t.Fatal("signerd did not exit")
			}
			if !strings.Contains(out.String(), tt.contains) {
				t.Fatalf("error does not mention %q:\n%s", tt.contains, out.String())
			}
		})
	}
}
