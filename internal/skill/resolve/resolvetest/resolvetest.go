// Package resolvetest provides loopback servers for testing code that
// fetches SchemaPin trust material (package resolve and signctl skill
// verify) without touching the internet: an HTTPS server whose certificate,
// issued by a throwaway CA, is valid for made-up host names such as
// example.test, and a minimal UDP DNS server answering TXT queries.
//
// Point a resolve.Fetcher at them with resolve.WithRootCAs(srv.Roots),
// resolve.WithHostAddr(host, srv.Addr()) and resolve.WithResolver(dns.Resolver()).
// It is for tests only; nothing in a binary imports it.
package resolvetest

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/binary"
	"errors"
	"io"
	"log"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

// CA is a throwaway certificate authority.
type CA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	// Pool holds only this CA, for tls.Config.RootCAs.
	Pool *x509.CertPool
}

// NewCA creates a CA valid for an hour around now.
func NewCA(tb testing.TB) *CA {
	tb.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		tb.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "resolvetest CA"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		tb.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		tb.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return &CA{cert: cert, key: key, Pool: pool}
}

// Leaf issues a server certificate for hosts (and 127.0.0.1).
func (ca *CA) Leaf(tb testing.TB, hosts ...string) tls.Certificate {
	tb.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		tb.Fatal(err)
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 62))
	if err != nil {
		tb.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: hosts[0]},
		DNSNames:     hosts,
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		tb.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

// Server is an HTTPS server on 127.0.0.1 whose certificate is valid for
// Hosts. Requests for any of the hosts reach Handler; r.Host says which.
type Server struct {
	*httptest.Server
	// Roots verifies the server's certificate.
	Roots *x509.CertPool
	// Hosts are the names the certificate covers.
	Hosts []string
}

// NewServer starts a Server for hosts (at least one) and closes it when
// the test ends.
func NewServer(tb testing.TB, h http.Handler, hosts ...string) *Server {
	tb.Helper()
	if len(hosts) == 0 {
		tb.Fatal("resolvetest.NewServer: no host names")
	}
	ca := NewCA(tb)
	s := httptest.NewUnstartedServer(h)
	s.TLS = &tls.Config{Certificates: []tls.Certificate{ca.Leaf(tb, hosts...)}, MinVersion: tls.VersionTLS12}
	// Clients that refuse the certificate make the server log handshake
	// errors; they are expected in tests and would only be noise.
	s.Config.ErrorLog = log.New(io.Discard, "", 0)
	s.StartTLS()
	tb.Cleanup(s.Close)
	return &Server{Server: s, Roots: ca.Pool, Hosts: hosts}
}

// Addr is the listener's host:port.
func (s *Server) Addr() string { return s.Listener.Addr().String() }

// DNSServer is a minimal authoritative DNS server on 127.0.0.1 (UDP) that
// answers TXT queries from a table. It parses exactly what Go's resolver
// sends: one question, optionally an EDNS0 OPT record, which it ignores.
// Unknown names get NXDOMAIN.
type DNSServer struct {
	conn net.PacketConn
	done chan struct{}

	mu       sync.Mutex
	txt      map[string][]string
	servfail map[string]bool
	queries  int
}

// NewDNSServer starts a DNSServer and stops it when the test ends.
func NewDNSServer(tb testing.TB) *DNSServer {
	tb.Helper()
	conn, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	s := &DNSServer{conn: conn, done: make(chan struct{}), txt: map[string][]string{}, servfail: map[string]bool{}}
	go s.serve()
	tb.Cleanup(func() {
		conn.Close()
		<-s.done
	})
	return s
}

// Addr is the server's UDP address.
func (s *DNSServer) Addr() string { return s.conn.LocalAddr().String() }

// SetTXT makes name (case-insensitive, trailing dot optional) exist with
// one TXT record per value; values longer than 255 bytes are split into
// several character-strings of one record, as a zone file would. No values
// means the name exists without TXT records (NODATA).
func (s *DNSServer) SetTXT(name string, values ...string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.txt[canonicalName(name)] = values
}

// SetServFail makes queries for name fail with SERVFAIL.
func (s *DNSServer) SetServFail(name string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.servfail[canonicalName(name)] = true
}

// Queries is how many queries the server answered.
func (s *DNSServer) Queries() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.queries
}

// Resolver returns a pure-Go resolver whose every query goes to this
// server, whatever /etc/resolv.conf says.
func (s *DNSServer) Resolver() *net.Resolver {
	addr := s.Addr()
	return &net.Resolver{
		PreferGo: true,
		Dial: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "udp", addr)
		},
	}
}

func canonicalName(n string) string { return strings.ToLower(strings.TrimSuffix(n, ".")) }

func (s *DNSServer) serve() {
	defer close(s.done)
	buf := make([]byte, 1500)
	for {
		n, peer, err := s.conn.ReadFrom(buf)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			continue
		}
		if resp := s.answer(buf[:n]); resp != nil {
			_, _ = s.conn.WriteTo(resp, peer)
		}
	}
}

// DNS wire constants (RFC 1035).
const (
	flagQR      = 0x8000
	maskOpcode  = 0x7800
	flagAA      = 0x0400
	flagRD      = 0x0100
	flagRA      = 0x0080
	typeTXT     = 16
	typeANY     = 255
	classIN     = 1
	rcodeOK     = 0
	rcodeFormat = 1
	rcodeFail   = 2
	rcodeNX     = 3
)

// answer builds the response to one query, or nil to drop a packet that
// is not a query at all.
func (s *DNSServer) answer(q []byte) []byte {
	if len(q) < 12 {
		return nil
	}
	flags := binary.BigEndian.Uint16(q[2:4])
	if flags&flagQR != 0 {
		return nil
	}
	respFlags := flagQR | flags&maskOpcode | flagAA | flags&flagRD | flagRA
	header := func(rcode, qd, an uint16) []byte {
		h := make([]byte, 12)
		copy(h, q[:2])
		binary.BigEndian.PutUint16(h[2:], uint16(respFlags)|rcode)
		binary.BigEndian.PutUint16(h[4:], qd)
		binary.BigEndian.PutUint16(h[6:], an)
		return h
	}
	if binary.BigEndian.Uint16(q[4:6]) != 1 {
		return header(rcodeFormat, 0, 0)
	}
	// The question: labels (queries never use compression), type, class.
	off := 12
	var labels []string
	for {
		if off >= len(q) {
			return header(rcodeFormat, 0, 0)
		}
		l := int(q[off])
		off++
		if l == 0 {
			break
		}
		if l&0xC0 != 0 || off+l > len(q) {
			return header(rcodeFormat, 0, 0)
		}
		labels = append(labels, string(q[off:off+l]))
		off += l
	}
	if off+4 > len(q) {
		return header(rcodeFormat, 0, 0)
	}
	qtype := binary.BigEndian.Uint16(q[off:])
	off += 4
	question := q[12:off]
	name := canonicalName(strings.Join(labels, "."))

	s.mu.Lock()
	s.queries++
	fail := s.servfail[name]
	values, exists := s.txt[name]
	s.mu.Unlock()

	var rcode uint16 = rcodeOK
	switch {
	case fail:
		rcode = rcodeFail
	case !exists:
		rcode = rcodeNX
	case qtype != typeTXT && qtype != typeANY:
		values = nil // NODATA for other types
	}
	if rcode != rcodeOK {
		values = nil
	}
	out := append(header(rcode, 1, uint16(len(values))), question...)
	for _, v := range values {
		var rdata []byte
		for first := true; first || v != ""; first = false {
			chunk := v[:min(len(v), 255)]
			v = v[len(chunk):]
			rdata = append(rdata, byte(len(chunk)))
			rdata = append(rdata, chunk...)
		}
		rr := []byte{0xC0, 0x0C} // pointer to the question's name at offset 12
		rr = binary.BigEndian.AppendUint16(rr, typeTXT)
		rr = binary.BigEndian.AppendUint16(rr, classIN)
		rr = binary.BigEndian.AppendUint32(rr, 60)
		rr = binary.BigEndian.AppendUint16(rr, uint16(len(rdata)))
		out = append(append(out, rr...), rdata...)
	}
	return out
}
