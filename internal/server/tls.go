package server

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/asn1"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"time"

	"google.golang.org/grpc/credentials"

	"github.com/signerd/signerd/internal/errdefs"
)

// LoopbackID is the identity of every plaintext peer of a loopback TCP
// listener (--insecure-loopback): nothing tells them apart.
const LoopbackID = "tcp-loopback"

// ListenTLS listens on addr (HOST:PORT) for mutual-TLS clients: TLS 1.3
// only, and a client certificate that verifies against clientCAFile is
// required. The server presents certFile/keyFile. The handshake happens in
// the gRPC server's transport credentials (see transportCredentials), so
// the caller's identity is the verified certificate's names.
func ListenTLS(addr, certFile, keyFile, clientCAFile string) (net.Listener, error) {
	src, err := NewTLSSource(TLSFiles{Cert: certFile, Key: keyFile, ClientCA: clientCAFile})
	if err != nil {
		return nil, err
	}
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("listen on %s: %w", addr, err)
	}
	return ServeTLS(l, src), nil
}

// ListenLoopback listens on addr for plaintext clients, and only if addr is
// a loopback address: its callers are all identified as LoopbackID.
func ListenLoopback(addr string) (net.Listener, error) {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, fmt.Errorf("listen address %q: %w", addr, err)
	}
	if !IsLoopbackHost(host) {
		return nil, fmt.Errorf("refusing plaintext TCP on %s: not a loopback address (use 127.0.0.1, ::1 or localhost, or mutual TLS)", addr)
	}
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("listen on %s: %w", addr, err)
	}
	return ServeLoopback(l)
}

// ServeLoopback marks an open TCP listener (its own, or one passed by
// systemd) as plaintext loopback, after checking what it is bound to:
// "localhost" could have resolved to anything, and a passed socket's
// address is the unit's, not ours.
func ServeLoopback(l net.Listener) (net.Listener, error) {
	if ta, ok := l.Addr().(*net.TCPAddr); !ok || !ta.IP.IsLoopback() {
		l.Close()
		return nil, fmt.Errorf("refusing plaintext TCP on %s: it is not a loopback address", l.Addr())
	}
	return &loopbackListener{Listener: l}, nil
}

// IsLoopbackHost reports whether host (no port) is a loopback IP literal or
// "localhost". An empty host (every interface) is not.
func IsLoopbackHost(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip, err := netip.ParseAddr(strings.TrimSuffix(strings.TrimPrefix(host, "["), "]"))
	return err == nil && ip.IsLoopback()
}

// serverTLSConfig builds the TLS 1.3, client-certificate-required
// configuration. now is when the server certificate must be valid.
func serverTLSConfig(certFile, keyFile, clientCAFile string, now time.Time) (*tls.Config, error) {
	if certFile == "" || keyFile == "" {
		return nil, errors.New("a TLS listener needs --tls-cert and --tls-key")
	}
	if clientCAFile == "" {
		return nil, errors.New("refusing a TLS listener without --client-ca: clients must present a certificate signed by it")
	}
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, fmt.Errorf("server certificate %s / key %s: %w", certFile, keyFile, err)
	}
	if leaf := cert.Leaf; leaf != nil {
		if now.After(leaf.NotAfter) {
			return nil, fmt.Errorf("server certificate %s expired at %s", certFile, leaf.NotAfter.UTC().Format(time.RFC3339))
		}
		if now.Before(leaf.NotBefore) {
			return nil, fmt.Errorf("server certificate %s is not valid before %s", certFile, leaf.NotBefore.UTC().Format(time.RFC3339))
		}
	}
	pool, err := loadCertPool(clientCAFile)
	if err != nil {
		return nil, fmt.Errorf("--client-ca: %w", err)
	}
	return &tls.Config{
		MinVersion:   tls.VersionTLS13,
		MaxVersion:   tls.VersionTLS13,
		Certificates: []tls.Certificate{cert},
		// gRPC clients require ALPN h2; it is set here because the
		// configuration is handed out per handshake (TLSSource), past
		// credentials.NewTLS, which would otherwise add it.
		NextProtos: []string{"h2"},
		ClientAuth: tls.RequireAndVerifyClientCert,
		ClientCAs:  pool,
		// Every connection presents and verifies its certificate: no
		// resumption of a session whose certificate has since expired.
		SessionTicketsDisabled: true,
	}, nil
}

// loadCertPool reads a PEM file of one or more CA certificates.
func loadCertPool(path string) (*x509.CertPool, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(b) {
		return nil, fmt.Errorf("%s holds no PEM certificate", path)
	}
	return pool, nil
}

// tlsIdentity is the caller identity of a verified TLS peer, for a call
// made at now. The chain was verified at the handshake, but a connection
// may outlive its certificate (a client calling at least once per idle
// timeout keeps it open): a call made once a certificate of the chain has
// expired, or before it is valid, is refused, and the client must connect
// again, with a current certificate.
func tlsIdentity(st tls.ConnectionState, now time.Time) (Identity, error) {
	if len(st.VerifiedChains) == 0 || len(st.VerifiedChains[0]) == 0 {
		return Identity{}, fmt.Errorf("TLS peer presented no verified client certificate: %w", errdefs.ErrUnauthenticated)
	}
	if c := outsideValidity(st.VerifiedChains[0], now); c != nil {
		return Identity{}, fmt.Errorf("the client certificate chain (%s) is valid from %s to %s, not now; connect again with a current certificate: %w",
			errdefs.Clip(c.Subject.String()), c.NotBefore.UTC().Format(time.RFC3339), c.NotAfter.UTC().Format(time.RFC3339), errdefs.ErrUnauthenticated)
	}
	names := CertNames(st.VerifiedChains[0][0])
	if len(names) == 0 {
		return Identity{}, fmt.Errorf("client certificate has no subject alternative name and no common name: %w", errdefs.ErrUnauthenticated)
	}
	return Identity{ID: certID(names), Names: names, TLS: true}, nil
}

// outsideValidity is the first certificate of chain not valid at now; nil
// if all are.
func outsideValidity(chain []*x509.Certificate, now time.Time) *x509.Certificate {
	for _, c := range chain {
		if now.Before(c.NotBefore) || now.After(c.NotAfter) {
			return c
		}
	}
	return nil
}

// maxCertID bounds a TLS caller's printable identity: it is in every audit
// record and signature record of its calls, and a certificate may carry
// many names.
const maxCertID = 256

// certID is a TLS caller's printable identity: "cert:" and its names,
// comma-separated, in CertNames' order. Every name, not only the first: a
// policy rule may match any of them, so two certificates that share a
// first name but not the name a rule grants must not look alike in the
// audit. Past maxCertID, the names that do not fit are counted instead
// ("cert:a,b,+3 more"); the first is always there, each name clipped as
// any caller-supplied string is (errdefs.Clip), and quoted (Go syntax) if
// it holds a comma or a quote or begins with "+", so that no name reads
// as two, or as the count.
func certID(names []string) string {
	id := "cert:" + certName(names[0])
	for i := 1; i < len(names); i++ {
		next := id + "," + certName(names[i])
		limit := maxCertID
		if after := len(names) - i - 1; after > 0 {
			limit -= len(moreNames(after)) // room to count the rest
		}
		if len(next) > limit {
			return id + moreNames(len(names)-i)
		}
		id = next
	}
	return id
}

func moreNames(n int) string { return fmt.Sprintf(",+%d more", n) }

// certName is one name as certID writes it.
// Quoting comes first, so that the clip bounds what is written (escapes
// can make a quoted name several times longer).
func certName(n string) string {
	if strings.ContainsAny(n, `,"`) || strings.HasPrefix(n, "+") {
		n = strconv.Quote(n)
	}
	return errdefs.Clip(n)
}

// CertNames returns the names a policy file's "certs" may match, in order:
// DNS names, URIs, email addresses; the subject common name only when the
// certificate has no subject alternative name extension at all (RFC 6125, and Go's own verification:
// a certificate with SANs names what its SANs say, and a CN beside them,
// which a CA may not have checked, must not grant what they do not).
// Empty names and duplicates are dropped.
func CertNames(c *x509.Certificate) []string {
	var names []string
	seen := map[string]bool{}
	add := func(n string) {
		if n != "" && !seen[n] {
			seen[n] = true
			names = append(names, n)
		}
	}
	for _, n := range c.DNSNames {
		add(n)
	}
	for _, u := range c.URIs {
		add(u.String())
	}
	for _, n := range c.EmailAddresses {
		add(n)
	}
	if !hasSANExtension(c) {
		add(c.Subject.CommonName)
	}
	return names
}

// oidSubjectAltName is the subject alternative name extension's OID.
var oidSubjectAltName = asn1.ObjectIdentifier{2, 5, 29, 17}

// hasSANExtension reports whether c has a subject alternative name
// extension of any kind (an IP address or an otherName count too: its CN
// is then not a name a CA vouched for).
func hasSANExtension(c *x509.Certificate) bool {
	for _, e := range c.Extensions {
		if e.Id.Equal(oidSubjectAltName) {
			return true
		}
	}
	return false
}

// tlsListener marks its connections for a TLS handshake.
type tlsListener struct {
	net.Listener
	creds credentials.TransportCredentials
	src   *TLSSource
}

func (l *tlsListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &tlsPendingConn{Conn: c, creds: l.creds, src: l.src, accepted: time.Now()}, nil
}

// tlsPendingConn is a TCP connection whose TLS handshake is still to come.
type tlsPendingConn struct {
	net.Conn
	creds    credentials.TransportCredentials
	src      *TLSSource
	accepted time.Time
	// pending is its slot among the connections in their handshake (nil:
	// not counted), freed when the handshake ends.
	pending *connSlot
}

// loopbackListener marks its connections as plaintext loopback peers.
type loopbackListener struct{ net.Listener }

func (l *loopbackListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &loopbackConn{Conn: c}, nil
}

// loopbackConn is a plaintext connection accepted on a loopback listener.
type loopbackConn struct{ net.Conn }

// LoopbackPeer is the "identity" of a plaintext loopback peer: none beyond
// being on this host.
type LoopbackPeer struct {
	credentials.CommonAuthInfo
}

// AuthType implements credentials.AuthInfo.
func (LoopbackPeer) AuthType() string { return "tcp-loopback" }
