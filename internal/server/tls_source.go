package server

import (
	"crypto/tls"
	"net"
	"sync/atomic"
	"time"

	"google.golang.org/grpc/credentials"
)

// TLSFiles are the PEM files of a mutual-TLS listener.
type TLSFiles struct {
	Cert, Key, ClientCA string
}

// TLSSource holds the TLS configuration a listener hands to each new
// handshake. Reload swaps it: connections already established keep the
// session they negotiated (nothing is dropped), new handshakes present the
// new certificate and check clients against the new CA.
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
	return &tlsListener{Listener: l, creds: src.credentials()}
}
