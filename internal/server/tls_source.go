package server

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/peer"

	"github.com/signerd/signerd/internal/errdefs"
)

// TLSFiles are the PEM files of a mutual-TLS listener.
type TLSFiles struct {
	Cert, Key, ClientCA string
}

// TLSSource holds the TLS configuration a listener hands to each new
// handshake. Reload swaps it: connections already established keep the
// session they negotiated (nothing is dropped), new handshakes present the
// new certificate and check clients against the new CA, and each call on
// an established connection is checked against the new CA too (TLSPeer).
type TLSSource struct {
	cur atomic.Pointer[tls.Config]
}

// NewTLSSource reads and checks the files (see serverTLSConfig).
func NewTLSSource(f TLSFiles) (*TLSSource, error) {
	cfg, err := serverTLSConfig(f.Cert, f.Key, f.ClientCA, time.Now())
	if err != nil {
		return nil, err
	}
	s := &TLSSource{}
	s.cur.Store(cfg)
	return s, nil
}

// Reload reads the files again. On any error (a missing or unparsable
// file, a key that does not match, an expired certificate, a CA file
// without certificates) the configuration in force stays and the error is
// returned.
func (s *TLSSource) Reload(f TLSFiles) error {
	cfg, err := serverTLSConfig(f.Cert, f.Key, f.ClientCA, time.Now())
	if err != nil {
		return err
	}
	s.cur.Store(cfg)
	return nil
}

// credentials returns gRPC transport credentials whose every handshake
// uses the configuration in force at that moment.
func (s *TLSSource) credentials() credentials.TransportCredentials {
	return credentials.NewTLS(&tls.Config{
		MinVersion: tls.VersionTLS13,
		MaxVersion: tls.VersionTLS13,
		NextProtos: []string{"h2"},
		GetConfigForClient: func(*tls.ClientHelloInfo) (*tls.Config, error) {
			return s.cur.Load(), nil
		},
	})
}

// ServeTLS marks an open TCP listener (its own, or one passed by systemd)
// for mutual-TLS handshakes configured by src.
func ServeTLS(l net.Listener, src *TLSSource) net.Listener {
	return &tlsListener{Listener: l, creds: src.credentials(), src: src}
}

// TLSPeer is a mutual-TLS peer: gRPC's TLSInfo, and the source whose
// client CAs in force must still vouch for its chain at each call. A
// reload that removes a CA (after its compromise) then ends what that
// CA's clients may do on the connections they hold, at their next call or
// stream item, and not only their next handshakes.
type TLSPeer struct {
	credentials.TLSInfo
	src *TLSSource

	// mu serializes verifications: the calls of one connection share one
	// verification of its chain (a client could present a chain costly to
	// verify, and open many streams at once).
	mu sync.Mutex
	// vouched is the last verification: against which configuration's
	// client CAs, and what it found; a call verifies again only after a
	// reload, or once no chain found is valid any more. Guarded by mu.
	vouched *vouching

	// conn is the connection, closed soon after a refusal (nil: none).
	conn    net.Conn
	closing sync.Once
}

// vouching is a verification of a peer's certificates.
type vouching struct {
	cfg    *tls.Config
	chains [][]*x509.Certificate // the chains the client CAs vouched for
	err    error                 // or why they did not
}

// closeAfterRefusal is how long a connection refused for its peer stays
// open: long enough for the refusal to reach the client, which then
// connects again (a gRPC client does not on UNAUTHENTICATED, so one that
// has renewed its certificate would otherwise stay on the refused
// connection for as long as it keeps calling).
const closeAfterRefusal = time.Second

// refused closes the connection, once, closeAfterRefusal from now.
func (p *TLSPeer) refused() {
	if p.conn == nil {
		return
	}
	p.closing.Do(func() { time.AfterFunc(closeAfterRefusal, func() { _ = p.conn.Close() }) })
}

// identity is the peer's identity for a call made at now: a chain the
// client CAs in force vouch for, every certificate of it within its
// validity (tlsIdentity). A refusal closes the connection soon after.
func (p *TLSPeer) identity(now time.Time) (Identity, error) {
	id, err := p.check(now)
	if err != nil {
		p.refused()
	}
	return id, err
}

func (p *TLSPeer) check(now time.Time) (Identity, error) {
	cfg := p.src.cur.Load()
	p.mu.Lock()
	v := p.vouched
	chain := v.validChain(cfg, now)
	if chain == nil && (v == nil || v.cfg != cfg || v.err == nil) {
		// First call, a reload since, or no chain found valid any more
		// (a root expired while a renewed one vouches): verify again, at
		// now, as the handshake did.
		v = verifyPeer(cfg, p.State.PeerCertificates, now)
		p.vouched = v
		chain = v.validChain(cfg, now)
	}
	p.mu.Unlock()
	if v.err != nil {
		return Identity{}, v.err
	}
	return tlsIdentity(tls.ConnectionState{VerifiedChains: [][]*x509.Certificate{chain}}, now)
}

// validChain is a chain v found for cfg whose every certificate is valid
// at now; nil if none (or v is another configuration's, or a refusal).
func (v *vouching) validChain(cfg *tls.Config, now time.Time) []*x509.Certificate {
	if v == nil || v.cfg != cfg || v.err != nil {
		return nil
	}
	for _, chain := range v.chains {
		if outsideValidity(chain, now) == nil {
			return chain
		}
	}
	return nil
}

// verifyPeer verifies the presented certificates against cfg's client CAs
// at now, as the TLS handshake does (the client-auth key usage, the
// intermediates the client sent).
func verifyPeer(cfg *tls.Config, certs []*x509.Certificate, now time.Time) *vouching {
	v := &vouching{cfg: cfg}
	if len(certs) == 0 {
		v.err = fmt.Errorf("TLS peer presented no client certificate: %w", errdefs.ErrUnauthenticated)
		return v
	}
	inter := x509.NewCertPool()
	for _, c := range certs[1:] {
		inter.AddCert(c)
	}
	v.chains, v.err = certs[0].Verify(x509.VerifyOptions{
		Roots: cfg.ClientCAs, Intermediates: inter, CurrentTime: now,
		KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	})
	if v.err != nil {
		v.err = fmt.Errorf("the client certificate no longer verifies (expired, or its CA no longer among the client CAs in force): %v: %w", v.err, errdefs.ErrUnauthenticated)
	}
	return v
}

// recheckPeer checks again, for work a call does long after it began (a
// SignBatch item, a SignSkillStream's signature), that its mutual-TLS peer
// is still one: the certificates within their validity, vouched for by
// the client CAs in force. Other peers pass.
func recheckPeer(ctx context.Context) error {
	p, ok := peer.FromContext(ctx)
	if !ok {
		return nil
	}
	if tp, ok := p.AuthInfo.(*TLSPeer); ok {
		_, err := tp.identity(time.Now())
		return err
	}
	return nil
}
