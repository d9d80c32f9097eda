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
	// vouched is the configuration whose client CAs last verified the
	// chain, and that chain: a call verifies it again only after a reload.
	vouched atomic.Pointer[vouchedChain]
	// conn is the connection, closed soon after a refusal (nil: none).
	conn    net.Conn
	closing sync.Once
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

type vouchedChain struct {
	cfg   *tls.Config
	chain []*x509.Certificate
}

// identity is the peer's identity for a call made at now: its chain as
// the client CAs in force verify it (again after a reload), each of its
// certificates within its validity (tlsIdentity).
func (p *TLSPeer) identity(now time.Time) (Identity, error) {
	id, err := p.check(now)
	if err != nil {
		p.refused()
	}
	return id, err
}

func (p *TLSPeer) check(now time.Time) (Identity, error) {
	certs := p.State.PeerCertificates
	if len(certs) == 0 {
		return Identity{}, fmt.Errorf("TLS peer presented no client certificate: %w", errdefs.ErrUnauthenticated)
	}
	cfg := p.src.cur.Load()
	v := p.vouched.Load()
	if v == nil || v.cfg != cfg {
		// An expired certificate is said to be one, not to be unvouched.
		if _, err := tlsIdentity(tls.ConnectionState{VerifiedChains: [][]*x509.Certificate{certs}}, now); err != nil {
			return Identity{}, err
		}
		inter := x509.NewCertPool()
		for _, c := range certs[1:] {
			inter.AddCert(c)
		}
		chains, err := certs[0].Verify(x509.VerifyOptions{
			Roots: cfg.ClientCAs, Intermediates: inter, CurrentTime: now,
			KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
		})
		if err != nil {
			return Identity{}, fmt.Errorf("the client certificate is no longer vouched for by the client CAs in force (reloaded since this connection was made): %v: %w", err, errdefs.ErrUnauthenticated)
		}
		v = &vouchedChain{cfg: cfg, chain: chains[0]}
		p.vouched.Store(v)
	}
	return tlsIdentity(tls.ConnectionState{VerifiedChains: [][]*x509.Certificate{v.chain}}, now)
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
