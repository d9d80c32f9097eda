package cli

import (
	"os"

	"github.com/spf13/pflag"

	"github.com/signerd/signerd/client"
)

// remoteFlags are the global flags that point signctl at signerd's TCP
// listener instead of its Unix socket.
type remoteFlags struct {
	addr, tlsCert, tlsKey, ca string
	source                    string
	flags                     *pflag.FlagSet
}

// register declares --addr, --tls-cert, --tls-key and --ca on the root's
// persistent flags, with SIGNCTL_ADDR, SIGNCTL_TLS_CERT, SIGNCTL_TLS_KEY
// and SIGNCTL_CA as defaults.
func (r *remoteFlags) register(pf *pflag.FlagSet) {
	r.flags = pf
	pf.StringVar(&r.addr, "addr", os.Getenv("SIGNCTL_ADDR"), "signerd's TCP listener HOST:PORT, instead of --socket (env SIGNCTL_ADDR); mutual TLS with --tls-cert/--tls-key/--ca, plaintext only to a loopback address without them")
	pf.StringVar(&r.tlsCert, "tls-cert", os.Getenv("SIGNCTL_TLS_CERT"), "client certificate (PEM) for --addr (env SIGNCTL_TLS_CERT)")
	pf.StringVar(&r.tlsKey, "tls-key", os.Getenv("SIGNCTL_TLS_KEY"), "private key (PEM) of --tls-cert (env SIGNCTL_TLS_KEY)")
	pf.StringVar(&r.source, "source-addr", os.Getenv("SIGNCTL_SOURCE_ADDR"), "local IP address to connect to --addr from (env SIGNCTL_SOURCE_ADDR; default: the kernel's choice)")
	pf.StringVar(&r.ca, "ca", os.Getenv("SIGNCTL_CA"), "CA certificate(s) (PEM) the server's certificate must chain to, for --addr (env SIGNCTL_CA)")
}

// useAddr reports whether to dial --addr: when it is set, unless only the
// environment set it and --socket was given on the command line.
func (r *remoteFlags) useAddr() bool {
	if r.addr == "" {
		return false
	}
	if r.flags != nil && r.flags.Changed("socket") && !r.flags.Changed("addr") {
		return false
	}
	return true
}

// dial connects to --addr (mutual TLS, or plaintext loopback without any
// TLS flag) or else to the Unix socket.
func (r *remoteFlags) dial(socket string) (*client.Client, error) {
	switch {
	case !r.useAddr():
		return client.DialUnix(socket)
	case r.tlsCert == "" && r.tlsKey == "" && r.ca == "":
		return client.DialLoopback(r.addr, client.WithSourceAddr(r.source))
	}
	return client.DialTLS(r.addr, r.tlsCert, r.tlsKey, r.ca, client.WithSourceAddr(r.source))
}
