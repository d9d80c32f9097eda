package client

import (
	"net"
	"os"
	"strconv"
	"strings"
)

// DefaultSocket is where signerd listens unless configured otherwise, and
// where Dial("") looks when SIGNCTL_SOCKET is not set.
const DefaultSocket = "/run/signerd/signerd.sock"

// SocketEnv is the environment variable naming signerd's socket, as for
// signctl.
const SocketEnv = "SIGNCTL_SOCKET"

// Option configures Dial.
type Option func(*dialOptions)

type dialOptions struct {
	certFile, keyFile, caFile string
}

// WithMutualTLS makes Dial connect to a TCP address (signerd --listen) with
// mutual TLS 1.3: it presents certFile and keyFile and accepts only a
// server certificate that chains to caFile and names the address's host.
func WithMutualTLS(certFile, keyFile, caFile string) Option {
	return func(o *dialOptions) { o.certFile, o.keyFile, o.caFile = certFile, keyFile, caFile }
}

// Dial connects to signerd the way signctl does. address is a Unix socket
// path (optionally prefixed "unix:"), or HOST:PORT for signerd's TCP
// listener: with WithMutualTLS, or in plaintext to a loopback address only
// (signerd --insecure-loopback). An empty address means $SIGNCTL_SOCKET,
// else DefaultSocket.
//
// The connection is made on the first call, not here: a daemon that is
// down shows up as ErrUnavailable, and a socket the caller may not open as
// ErrPermissionDenied, from that call. Close the client when done.
func Dial(address string, opts ...Option) (*Client, error) {
	var o dialOptions
	for _, opt := range opts {
		opt(&o)
	}
	if address == "" {
		address = os.Getenv(SocketEnv)
	}
	if address == "" {
		address = DefaultSocket
	}
	if path, ok := strings.CutPrefix(address, "unix:"); ok {
		return DialUnix(path)
	}
	if !isHostPort(address) {
		return DialUnix(address)
	}
	if o.certFile == "" && o.keyFile == "" && o.caFile == "" {
		return DialLoopback(address)
	}
	return DialTLS(address, o.certFile, o.keyFile, o.caFile)
}

// isHostPort reports whether address is HOST:PORT with a numeric port, as
// opposed to a socket path (which has a slash, or no port).
func isHostPort(address string) bool {
	if strings.Contains(address, "/") {
		return false
	}
	_, port, err := net.SplitHostPort(address)
	if err != nil {
		return false
	}
	_, err = strconv.ParseUint(port, 10, 16)
	return err == nil
}
