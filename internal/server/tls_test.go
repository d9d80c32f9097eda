package server

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/peer"

	"github.com/signerd/signerd/internal/errdefs"
	"github.com/signerd/signerd/internal/testutil/certs"
)

// handshake accepts one connection on l, runs the server's transport
// credentials on it while dial connects, and returns what identify makes
// of the peer.
func handshake(t *testing.T, l net.Listener, dial func(addr string) (net.Conn, error)) (Identity, error) {
	t.Helper()
	type result struct {
		id  Identity
		err error
	}
	done := make(chan result, 1)
	go func() {
		c, err := l.Accept()
		if err != nil {
			done <- result{err: err}
			return
		}
		defer c.Close()
		_, info, err := newTransportCredentials(slog.New(slog.NewTextHandler(io.Discard, nil))).ServerHandshake(c)
		if err != nil {
			done <- result{err: err}
			return
		}
		id, err := identify(peer.NewContext(t.Context(), &peer.Peer{AuthInfo: info}))
		done <- result{id, err}
	}()
	c, err := dial(l.Addr().String())
	if err == nil {
		defer c.Close()
	}
	select {
	case r := <-done:
		return r.id, r.err
	case <-time.After(10 * time.Second):
		t.Fatal("server handshake did not finish")
	}
	return Identity{}, nil
}

func TestTLSListenerIdentity(t *testing.T) {
	dir := t.TempDir()
	ca := certs.NewCA(t, "signerd clients")
	other := certs.NewCA(t, "someone else")
	caFile := ca.WriteFile(t, dir, "ca.pem")
	srv := ca.Server(t).WriteFiles(t, dir, "server")
	l, err := ListenTLS("127.0.0.1:0", srv.Cert, srv.Key, caFile)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	roots := x509.NewCertPool()
	roots.AddCert(ca.Cert)
	tlsDial := func(client *certs.Issued, maxVersion uint16) func(string) (net.Conn, error) {
		return func(addr string) (net.Conn, error) {
			cfg := &tls.Config{RootCAs: roots, NextProtos: []string{"h2"}, MaxVersion: maxVersion}
			if client != nil {
				pair, err := tls.X509KeyPair(client.CertPEM, client.KeyPEM)
				if err != nil {
					t.Fatal(err)
				}
				// Present it even when the server's list of acceptable CAs
				// does not name its issuer, so the server has to refuse it.
				cfg.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return &pair, nil }
			}
			c, err := tls.Dial("tcp", addr, cfg)
			if err == nil {
				// TLS 1.3 clients finish before the server checks their
				// certificate; reading makes the client wait for that.
				c.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
				c.Read(make([]byte, 1))
			}
			return c, err
		}
	}
	valid := ca.Issue(t, certs.Leaf{CN: "build-farm", DNS: []string{"build-farm.example.com"}, URIs: []string{"spiffe://example.com/ci"}, Emails: []string{"ci@example.com"}})
	cnOnly := ca.Issue(t, certs.Leaf{CN: "verifier-1"})
	foreign := other.Issue(t, certs.Leaf{CN: "build-farm", DNS: []string{"build-farm.example.com"}})
	expired := ca.Issue(t, certs.Leaf{CN: "build-farm", NotBefore: time.Now().Add(-48 * time.Hour), NotAfter: time.Now().Add(-24 * time.Hour)})
	serverCert := ca.Server(t) // right CA, but not a client certificate

	tests := []struct {
		name      string
		dial      func(string) (net.Conn, error)
		wantID    string
		wantNames []string
		wantErr   string
	}{
		// Its CN is not among its names: beside SANs it names nothing
		// (RFC 6125), so a policy rule for "build-farm" does not match.
		{"valid certificate", tlsDial(&valid, 0), "cert:build-farm.example.com,spiffe://example.com/ci,ci@example.com",
			[]string{"build-farm.example.com", "spiffe://example.com/ci", "ci@example.com"}, ""},
		{"common name only", tlsDial(&cnOnly, 0), "cert:verifier-1", []string{"verifier-1"}, ""},
		{"no certificate", tlsDial(nil, 0), "", nil, "certificate"},
		{"certificate from another CA", tlsDial(&foreign, 0), "", nil, "unknown authority"},
		{"expired certificate", tlsDial(&expired, 0), "", nil, "expired"},
		{"server certificate used as a client certificate", tlsDial(&serverCert, 0), "", nil, "usage"},
		{"TLS 1.2", tlsDial(&valid, tls.VersionTLS12), "", nil, "version"},
		{"plaintext", func(addr string) (net.Conn, error) {
			c, err := net.Dial("tcp", addr)
			if err == nil {
				c.Write([]byte("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"))
			}
			return c, err
		}, "", nil, "tls"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			id, err := handshake(t, l, tt.dial)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(strings.ToLower(err.Error()), tt.wantErr) {
					t.Fatalf("handshake: identity %+v, err %v; want an error mentioning %q", id, err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if id.ID != tt.wantID || !id.TLS || id.Unix || id.Loopback || !slices.Equal(id.Names, tt.wantNames) {
				t.Fatalf("identity %+v; want ID %q, names %q", id, tt.wantID, tt.wantNames)
			}
		})
	}
}

func TestTLSIdentityNeedsVerifiedChain(t *testing.T) {
	ca := certs.NewCA(t, "ca")
	leaf := ca.Issue(t, certs.Leaf{CN: "x"})
	// A peer certificate that no chain verified (as with VerifyClientCertIfGiven
	// misconfigured, or RequestClientCert) is not an identity.
	_, err := tlsIdentity(tls.ConnectionState{PeerCertificates: []*x509.Certificate{leaf.Cert}}, time.Now())
	if !errors.Is(err, errdefs.ErrUnauthenticated) {
		t.Fatalf("unverified peer certificate: %v", err)
	}
	nameless := ca.Issue(t, certs.Leaf{})
	_, err = tlsIdentity(tls.ConnectionState{VerifiedChains: [][]*x509.Certificate{{nameless.Cert, ca.Cert}}}, time.Now())
	if !errors.Is(err, errdefs.ErrUnauthenticated) {
		t.Fatalf("certificate without names: %v", err)
	}
}

// TestTLSIdentityExpiresWithItsCertificate: a connection whose client
// certificate was valid at the handshake is no identity for a call made
// after it expired (the connection may be kept open by calls), nor before
// it is valid; the CA's validity counts too.
func TestTLSIdentityExpiresWithItsCertificate(t *testing.T) {
	ca := certs.NewCA(t, "ca")
	now := time.Now()
	leaf := ca.Issue(t, certs.Leaf{DNS: []string{"build-farm.example.com"}, NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour)})
	st := tls.ConnectionState{VerifiedChains: [][]*x509.Certificate{{leaf.Cert, ca.Cert}}}
	for _, tt := range []struct {
		name string
		at   time.Time
		ok   bool
	}{
		{"within its validity", now, true},
		{"after it expired", now.Add(2 * time.Hour), false},
		{"before it is valid", now.Add(-2 * time.Hour), false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			id, err := tlsIdentity(st, tt.at)
			if tt.ok != (err == nil) || (err != nil && !errors.Is(err, errdefs.ErrUnauthenticated)) {
				t.Fatalf("identity %+v, %v; want ok %v (or UNAUTHENTICATED)", id, err, tt.ok)
			}
		})
	}
	// A leaf outliving its CA: the CA's expiry ends the identity.
	outliving := ca.Issue(t, certs.Leaf{DNS: []string{"x.example"}, NotBefore: now.Add(-time.Hour), NotAfter: ca.Cert.NotAfter.Add(time.Hour)})
	at := ca.Cert.NotAfter.Add(time.Second)
	if _, err := tlsIdentity(tls.ConnectionState{VerifiedChains: [][]*x509.Certificate{{outliving.Cert, ca.Cert}}}, at); !errors.Is(err, errdefs.ErrUnauthenticated) {
		t.Fatalf("a call after the CA expired: %v, want UNAUTHENTICATED", err)
	}
}

func TestServerTLSConfigErrors(t *testing.T) {
	dir := t.TempDir()
	ca := certs.NewCA(t, "ca")
	caFile := ca.WriteFile(t, dir, "ca.pem")
	srv := ca.Server(t).WriteFiles(t, dir, "server")
	expired := ca.Issue(t, certs.Leaf{CN: "old", Server: true, NotBefore: time.Now().Add(-48 * time.Hour), NotAfter: time.Now().Add(-time.Hour)}).WriteFiles(t, dir, "old")
	notPEM := certs.Files{Cert: srv.Key, Key: srv.Key}
	garbage := dir + "/garbage.pem"
	if err := os.WriteFile(garbage, []byte("not a certificate"), 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name                string
		cert, key, clientCA string
		want                string
	}{
		{"no client CA", srv.Cert, srv.Key, "", "without --client-ca"},
		{"no key", srv.Cert, "", caFile, "--tls-key"},
		{"expired server certificate", expired.Cert, expired.Key, caFile, "expired"},
		{"key given as certificate", notPEM.Cert, notPEM.Key, caFile, "server certificate"},
		{"client CA without certificates", srv.Cert, srv.Key, garbage, "no PEM certificate"},
		{"missing client CA file", srv.Cert, srv.Key, dir + "/missing.pem", "--client-ca"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := serverTLSConfig(tt.cert, tt.key, tt.clientCA, time.Now())
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("serverTLSConfig: %v; want an error mentioning %q", err, tt.want)
			}
			if cfg != nil {
				t.Fatal("config returned with an error")
			}
		})
	}
	cfg, err := serverTLSConfig(srv.Cert, srv.Key, caFile, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if cfg.MinVersion != tls.VersionTLS13 || cfg.ClientAuth != tls.RequireAndVerifyClientCert || cfg.ClientCAs == nil {
		t.Fatalf("config: min %x, client auth %v", cfg.MinVersion, cfg.ClientAuth)
	}
}

func TestLoopbackListener(t *testing.T) {
	for _, addr := range []string{"0.0.0.0:0", ":0", "[::]:0", "192.0.2.1:0", "example.com:0"} {
		if l, err := ListenLoopback(addr); err == nil {
			l.Close()
			t.Errorf("ListenLoopback(%q) accepted a non-loopback address", addr)
		} else if !strings.Contains(err.Error(), "loopback") && !strings.Contains(err.Error(), "address") {
			t.Errorf("ListenLoopback(%q): %v", addr, err)
		}
	}
	l, err := ListenLoopback("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	id, err := handshake(t, l, func(addr string) (net.Conn, error) { return net.Dial("tcp", addr) })
	if err != nil {
		t.Fatal(err)
	}
	if id.ID != LoopbackID || !id.Loopback || id.Unix || id.TLS {
		t.Fatalf("loopback identity: %+v", id)
	}
}

func TestTransportRefusesUnknownConnections(t *testing.T) {
	// A plain TCP listener handed to the server directly (not through
	// ListenTLS or ListenLoopback) gets no identity.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if _, err := handshake(t, l, func(addr string) (net.Conn, error) { return net.Dial("tcp", addr) }); err == nil || !strings.Contains(err.Error(), "refusing") {
		t.Fatalf("plain TCP connection: %v", err)
	}
}

func TestIsLoopbackHost(t *testing.T) {
	for host, want := range map[string]bool{
		"127.0.0.1": true, "127.1.2.3": true, "::1": true, "[::1]": true, "localhost": true, "LocalHost": true,
		"": false, "0.0.0.0": false, "::": false, "10.0.0.1": false, "example.com": false, "localhost.example.com": false,
	} {
		if got := IsLoopbackHost(host); got != want {
			t.Errorf("IsLoopbackHost(%q) = %v", host, got)
		}
	}
}

func TestIdentifyTLSInfo(t *testing.T) {
	ca := certs.NewCA(t, "ca")
	leaf := ca.Issue(t, certs.Leaf{CN: "cn-name", DNS: []string{"cn-name"}})
	info := credentials.TLSInfo{State: tls.ConnectionState{VerifiedChains: [][]*x509.Certificate{{leaf.Cert, ca.Cert}}}}
	id, err := identify(peer.NewContext(t.Context(), &peer.Peer{AuthInfo: info}))
	if err != nil || id.ID != "cert:cn-name" || !slices.Equal(id.Names, []string{"cn-name"}) || !id.TLS {
		t.Fatalf("identify: %+v %v (duplicate CN and SAN should appear once)", id, err)
	}
}

// TestCertID: a TLS caller is named by all its certificate's names, so
// certificates that share a first name but not the one a policy rule
// grants are told apart in the audit; a certificate with many names is
// bounded, the names past the bound counted.
func TestCertID(t *testing.T) {
	long := strings.Repeat("n", 100)
	many := make([]string, 40)
	for i := range many {
		many[i] = fmt.Sprintf("name-%02d.example.com", i)
	}
	tests := []struct {
		name  string
		names []string
		want  string
	}{
		{"one name", []string{"a.example"}, "cert:a.example"},
		{"several", []string{"a.example", "admin.example"}, "cert:a.example,admin.example"},
		{"a name with a comma is quoted, not read as two", []string{"a.example,admin.example"}, `cert:"a.example,admin.example"`},
		{"a name like the count is quoted", []string{"a.example", "+3 more"}, `cert:a.example,"+3 more"`},
		{"a name with a quote is quoted", []string{`a"b`}, `cert:"a\"b"`},
		{"a long first name is clipped", []string{strings.Repeat("f", 300), "b"}, "cert:" + strings.Repeat("f", 128) + "…(300 bytes),b"},
		{"exactly at the bound", []string{long, strings.Repeat("m", 128), strings.Repeat("x", 21)}, "cert:" + long + "," + strings.Repeat("m", 128) + "," + strings.Repeat("x", 21)},
		{"one past the bound", []string{long, strings.Repeat("m", 128), strings.Repeat("x", 22)}, "cert:" + long + "," + strings.Repeat("m", 128) + ",+1 more"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := certID(tt.names); got != tt.want {
				t.Errorf("certID = %q, want %q", got, tt.want)
			}
		})
	}
	for _, names := range [][]string{
		{strings.Repeat(`"`, 200)},
		{strings.Repeat(",\x01\"", 100), strings.Repeat(`"`, 200), "b"},
	} {
		if id := certID(names); len(id) > maxCertID {
			t.Errorf("certID of names needing escapes: %d bytes, over %d", len(id), maxCertID)
		}
	}
	got := certID(many)
	if len(got) > maxCertID || !strings.HasPrefix(got, "cert:name-00.example.com,name-01.example.com,") || !strings.HasSuffix(got, " more") {
		t.Fatalf("certID of 40 names: %d bytes, %q", len(got), got)
	}
	var kept int
	if _, err := fmt.Sscanf(got[strings.LastIndex(got, ",+")+2:], "%d more", &kept); err != nil {
		t.Fatal(err)
	}
	if shown := strings.Count(got, ".example.com"); shown+kept != len(many) {
		t.Fatalf("certID shows %d names and counts %d more, of %d", shown, kept, len(many))
	}
}

// TestTLSReloadEndsARemovedCAsCallers: a connection made with a
// certificate from a client CA that a reload then removes (after its
// compromise) is no identity for its next call; a CA file that still holds
// that CA keeps it one. Before, only new handshakes saw the reload.
func TestTLSReloadEndsARemovedCAsCallers(t *testing.T) {
	ca, next := certs.NewCA(t, "compromised"), certs.NewCA(t, "next")
	serving := newTLSServing(t, ca, ca)
	l := serving.listen(t)

	infos := make(chan credentials.AuthInfo, 1)
	go func() {
		c, err := l.Accept()
		if err != nil {
			t.Error(err)
			close(infos)
			return
		}
		_, info, err := newTransportCredentials(slog.New(slog.NewTextHandler(io.Discard, nil))).ServerHandshake(c)
		if err != nil {
			t.Error(err)
		}
		infos <- info
	}()
	client := ca.Issue(t, certs.Leaf{DNS: []string{"build-farm.example.com"}})
	conn, err := tls.Dial("tcp", l.Addr().String(), clientTLS(t, client, ca))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
	conn.Read(make([]byte, 1)) // TLS 1.3: wait for the server's check
	info := <-infos
	if info == nil {
		t.Fatal("no handshake")
	}
	call := func() error {
		_, err := identify(peer.NewContext(t.Context(), &peer.Peer{AuthInfo: info}))
		return err
	}
	if err := call(); err != nil {
		t.Fatalf("a call from a client of the CA in force: %v", err)
	}
	for _, tt := range []struct {
		name string
		cas  []*certs.CA
		ok   bool
	}{
		{"the CA removed", []*certs.CA{next}, false},
		{"the CA back, beside the next one", []*certs.CA{next, ca}, true},
	} {
		serving.reload(t, tt.cas...)
		if err := call(); tt.ok != (err == nil) || (err != nil && !errors.Is(err, errdefs.ErrUnauthenticated)) {
			t.Fatalf("%s: the connection's next call: %v, want ok %v (or UNAUTHENTICATED)", tt.name, err, tt.ok)
		}
	}
}

// TestTLSPeerIgnoresUnneededCertificates: a client that sends, beside its
// chain, a certificate the chain does not need (an expired cross-sign, an
// old intermediate) gets in at the handshake and is served: only the chain
// the client CAs vouch for counts, as at the handshake. Before, every
// presented certificate's dates were checked, and such a client had every
// call refused.
func TestTLSPeerIgnoresUnneededCertificates(t *testing.T) {
	ca := certs.NewCA(t, "clients")
	src := newTLSServing(t, ca, ca).src
	now := time.Now()
	leaf := ca.Issue(t, certs.Leaf{DNS: []string{"build-farm.example.com"}})
	stale := ca.Issue(t, certs.Leaf{CN: "old intermediate", NotBefore: now.Add(-48 * time.Hour), NotAfter: now.Add(-24 * time.Hour)})
	p := &TLSPeer{TLSInfo: credentials.TLSInfo{State: tls.ConnectionState{PeerCertificates: []*x509.Certificate{leaf.Cert, stale.Cert}}}, src: src}
	for i := range 2 { // verified, then from the cache
		id, err := p.identity(now)
		if err != nil || id.ID != "cert:build-farm.example.com" {
			t.Fatalf("call %d: %+v, %v", i, id, err)
		}
	}
}

// TestTLSPeerVerifiedAgainWhenItsChainExpires: a connection whose chain's
// root expires while a renewed root (the same name and key, valid only
// from later, staged in the client CA file beforehand) vouches for the
// same client is verified again, not refused.
func TestTLSPeerVerifiedAgainWhenItsChainExpires(t *testing.T) {
	now := time.Now()
	ca := certs.NewCA(t, "clients") // valid until a day from now
	renewed := ca.Renewed(t, now.Add(20*time.Hour), now.Add(72*time.Hour))
	src := newTLSServing(t, ca, ca, renewed).src
	leaf := ca.Issue(t, certs.Leaf{DNS: []string{"build-farm.example.com"}, NotBefore: now.Add(-time.Hour), NotAfter: now.Add(60 * time.Hour)})
	p := &TLSPeer{TLSInfo: credentials.TLSInfo{State: tls.ConnectionState{PeerCertificates: []*x509.Certificate{leaf.Cert}}}, src: src}
	for _, at := range []time.Time{now, now.Add(30 * time.Hour)} { // the first root expired at the second
		if id, err := p.identity(at); err != nil || id.ID != "cert:build-farm.example.com" {
			t.Fatalf("a call at %s: %+v, %v", at.Sub(now).Round(time.Hour), id, err)
		}
	}
}

// tlsServing is a TLS source serving a certificate of ca, whose client CA
// file a test rewrites and reloads.
type tlsServing struct {
	src   *TLSSource
	files TLSFiles
}

func newTLSServing(t *testing.T, ca *certs.CA, clientCAs ...*certs.CA) *tlsServing {
	t.Helper()
	dir := t.TempDir()
	srv := ca.Server(t).WriteFiles(t, dir, "server")
	s := &tlsServing{files: TLSFiles{Cert: srv.Cert, Key: srv.Key, ClientCA: filepath.Join(dir, "client-ca.pem")}}
	s.writeCAs(t, clientCAs...)
	src, err := NewTLSSource(s.files)
	if err != nil {
		t.Fatal(err)
	}
	s.src = src
	return s
}

// writeCAs writes the client CA file holding cas, in order.
func (s *tlsServing) writeCAs(t *testing.T, cas ...*certs.CA) {
	t.Helper()
	var pemData []byte
	for _, c := range cas {
		pemData = append(pemData, c.PEM...)
	}
	if err := os.WriteFile(s.files.ClientCA, pemData, 0o644); err != nil {
		t.Fatal(err)
	}
}

// reload makes cas the client CAs in force.
func (s *tlsServing) reload(t *testing.T, cas ...*certs.CA) {
	t.Helper()
	s.writeCAs(t, cas...)
	if err := s.src.Reload(s.files); err != nil {
		t.Fatal(err)
	}
}

// listen serves mutual TLS on a loopback port, closed at the test's end.
func (s *tlsServing) listen(t *testing.T) net.Listener {
	t.Helper()
	tcp, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l := ServeTLS(tcp, s.src)
	t.Cleanup(func() { l.Close() })
	return l
}

// clientTLS is a client's configuration: its certificate, and ca as the
// server's.
func clientTLS(t *testing.T, client certs.Issued, ca *certs.CA) *tls.Config {
	t.Helper()
	pair, err := tls.X509KeyPair(client.CertPEM, client.KeyPEM)
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AddCert(ca.Cert)
	return &tls.Config{RootCAs: roots, NextProtos: []string{"h2"}, Certificates: []tls.Certificate{pair}, ServerName: "localhost"}
}
