package client

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strings"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/signerd/signerd/internal/errdefs"
)

// DialTLS connects to signerd's TCP listener (--listen) with mutual TLS 1.3:
// it presents certFile/keyFile and accepts only a server certificate that
// chains to caFile and names addr's host. The connection is lazy; a refused
// handshake shows up on the first call.
func DialTLS(addr, certFile, keyFile, caFile string, opts ...TCPOption) (*Client, error) {
	if err := checkAddr(addr); err != nil {
		return nil, err
	}
	if certFile == "" || keyFile == "" || caFile == "" {
		return nil, fmt.Errorf("mutual TLS to %s needs a client certificate, its key and the CA of the server's certificate (--tls-cert, --tls-key, --ca): %w", addr, errdefs.ErrInvalidArgument)
	}
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, fmt.Errorf("client certificate %s / key %s: %v: %w", certFile, keyFile, err, errdefs.ErrInvalidArgument)
	}
	pem, err := os.ReadFile(caFile)
	if err != nil {
		return nil, fmt.Errorf("CA file: %v: %w", err, errdefs.ErrInvalidArgument)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("CA file %s holds no PEM certificate: %w", caFile, errdefs.ErrInvalidArgument)
	}
	cfg := &tls.Config{
		MinVersion:   tls.VersionTLS13,
		Certificates: []tls.Certificate{cert},
		RootCAs:      pool,
	}
	return dialTCP(addr, credentials.NewTLS(cfg), opts)
}

// DialLoopback connects in plaintext to a loopback listener that signerd
// serves with --insecure-loopback. It refuses any address that is not
// loopback: plaintext never leaves the host.
func DialLoopback(addr string, opts ...TCPOption) (*Client, error) {
	if err := checkAddr(addr); err != nil {
		return nil, err
	}
	host, _, _ := net.SplitHostPort(addr)
	if !IsLoopbackHost(host) {
		return nil, fmt.Errorf("%s is not a loopback address: plaintext is refused; give --tls-cert, --tls-key and --ca for mutual TLS: %w", addr, errdefs.ErrInvalidArgument)
	}
	return dialTCP(addr, insecure.NewCredentials(), opts)
}

// IsLoopbackHost reports whether host (no port) is a loopback IP literal or
// "localhost".
func IsLoopbackHost(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip, err := netip.ParseAddr(strings.TrimSuffix(strings.TrimPrefix(host, "["), "]"))
	return err == nil && ip.IsLoopback()
}

func checkAddr(addr string) error {
	if host, port, err := net.SplitHostPort(addr); err != nil || host == "" || port == "" {
		return fmt.Errorf("address %q: want HOST:PORT: %w", addr, errdefs.ErrInvalidArgument)
	}
	return nil
}

// TCPOption configures DialTLS and DialLoopback.
type TCPOption func(*tcpOptions)

type tcpOptions struct {
	source string
}

// WithSourceAddr makes the connection from the local IP address source
// (empty: the kernel's choice): on a host with several addresses, the one
// a firewall or the server's per-source limits expect.
func WithSourceAddr(source string) TCPOption {
	return func(o *tcpOptions) { o.source = source }
}

func dialTCP(addr string, creds credentials.TransportCredentials, opts []TCPOption) (*Client, error) {
	var o tcpOptions
	for _, f := range opts {
		f(&o)
	}
	dialOpts := []grpc.DialOption{
		grpc.WithTransportCredentials(creds),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(16 << 20)),
	}
	if o.source != "" {
		ip := net.ParseIP(strings.TrimSuffix(strings.TrimPrefix(o.source, "["), "]"))
		if ip == nil {
			return nil, fmt.Errorf("source address %q is not an IP address: %w", o.source, errdefs.ErrInvalidArgument)
		}
		d := net.Dialer{LocalAddr: &net.TCPAddr{IP: ip}}
		dialOpts = append(dialOpts, grpc.WithContextDialer(func(ctx context.Context, a string) (net.Conn, error) {
			return d.DialContext(ctx, "tcp", a)
		}))
	}
	conn, err := grpc.NewClient("dns:///"+addr, dialOpts...)
	if err != nil {
		return nil, fmt.Errorf("address %s: %w", addr, err)
	}
	return (&Client{}).init(conn, addr), nil
}
