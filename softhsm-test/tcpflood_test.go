package softhsmtest

import (
	"fmt"
	"net"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/signerd/signerd/internal/testutil/certs"
)

// TestTLSHandshakeFlood: silent TCP connections — a peer without a
// certificate that never starts its TLS handshake — cannot lock mutual-TLS
// clients out of the TCP listener. Each round opens 4,000 silent
// connections from 127.0.0.1, then a build farm's `signctl verify` from
// 127.0.0.2 must succeed within its 2 s --timeout, every round, with the
// daemon's default limits. Connections count against their source from
// accept, and one source gets 8 of the 64 slots for connections still in
// their handshake, for 3 s: the rest of the flood is closed at once.
// (Before, the flood held all 1,024 slots until the 10 s handshake timeout
// and the verify waited behind it in the kernel's accept queue.)
func TestTLSHandshakeFlood(t *testing.T) {
	rounds, silent := 3, 4000
	if relSoak() {
		rounds = 25
	}
	raiseFileLimit(t, uint64(silent)+1024)
	dir := t.TempDir()
	ca := certs.NewCA(t, "signerd clients")
	caFile := ca.WriteFile(t, dir, "ca.pem")
	srv := ca.Server(t).WriteFiles(t, dir, "server")
	farm := ca.Issue(t, certs.Leaf{CN: "build-farm"}).WriteFiles(t, dir, "farm")
	policy := writePolicy(t, `{"version": 1, "rules": [
  {"uids": [0], "role": "admin"},
  {"certs": ["build-farm"], "role": "verifier"}
]}`)
	d := startDaemon(t, "--log-level", "info", "--listen", "127.0.0.1:0",
		"--tls-cert", srv.Cert, "--tls-key", srv.Key, "--client-ca", caFile, "--policy", policy)
	addr := d.tcpAddr(t)
	mustSignctl(t, d, "key", "create", "release", "--algorithm", "ed25519")
	mustSignctl(t, d, "trust", "add", "--org", "acme", "--key", "release")
	pkg := writeFile(t, t.TempDir(), "lib.so", []byte("from the farm"))
	mustSignctl(t, d, "sign", pkg, "--key", "release")

	dialer := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)}, Timeout: 30 * time.Second}
	for round := range rounds {
		flood := make([]net.Conn, 0, silent)
		for range silent {
			c, err := dialer.Dial("tcp", addr)
			if err != nil {
				t.Fatalf("round %d: silent connection %d: %v", round, len(flood), err)
			}
			flood = append(flood, c)
		}
		r := signctl(t, nil, "--addr", addr, "--source-addr", "127.0.0.2", "--timeout", "2s",
			"--tls-cert", farm.Cert, "--tls-key", farm.Key, "--ca", caFile, "verify", pkg, "--org", "acme")
		for _, c := range flood {
			c.Close()
		}
		expectExit(t, r, 0, fmt.Sprintf("round %d: the farm verifies from 127.0.0.2 behind 4,000 silent connections from 127.0.0.1", round))
	}
	if !strings.Contains(d.logs.String(), `msg="unauthenticated connection refused" peer=host:127.0.0.1`) {
		t.Errorf("the daemon did not log refusing the flood from 127.0.0.1:\n%.4000s", d.logs.String())
	}
	t.Logf("%d rounds of %d silent connections from 127.0.0.1: the mutual-TLS verify from 127.0.0.2 succeeded within 2 s each time", rounds, silent)
}

// raiseFileLimit raises this process's soft descriptor limit to at least
// n (up to the hard limit), and fails the test when the hard limit is
// lower: a flood test must not fail for the test's own lack of
// descriptors.
func raiseFileLimit(t *testing.T, n uint64) {
	t.Helper()
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		t.Fatal(err)
	}
	if lim.Cur >= n {
		return
	}
	if lim.Max < n {
		t.Fatalf("this test needs %d descriptors; the hard limit is %d (ulimit -Hn)", n, lim.Max)
	}
	lim.Cur = lim.Max
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		t.Fatal(err)
	}
}
