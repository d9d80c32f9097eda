package daemon

import (
	"errors"
	"fmt"
	"net"

	"github.com/signerd/signerd/internal/server"
)

// checkListen validates the TCP listener settings before anything is
// opened, so a misconfiguration stops start-up with a clear message:
// mutual TLS needs a certificate, its key and a client CA; plaintext is
// allowed only on a loopback address and only with --insecure-loopback.
func checkListen(c Config) error {
	if c.MetricsPprof && c.MetricsListen == "" {
		return errors.New("--metrics-pprof needs --metrics-listen: the profiler is served on the metrics address")
	}
	tlsGiven := c.TLSCert != "" || c.TLSKey != "" || c.ClientCA != ""
	if c.Listen == "" {
		switch {
		case tlsGiven:
			return errors.New("--tls-cert, --tls-key and --client-ca configure the TCP listener, but no --listen HOST:PORT was given")
		case c.InsecureLoopback:
			return errors.New("--insecure-loopback applies to --listen, which was not given")
		}
		return nil
	}
	host, port, err := net.SplitHostPort(c.Listen)
	if err != nil || port == "" {
		return fmt.Errorf("--listen %q: want HOST:PORT (e.g. 0.0.0.0:7443 or 127.0.0.1:7443)", c.Listen)
	}
	if tlsGiven {
		if c.InsecureLoopback {
			return errors.New("--insecure-loopback contradicts --tls-cert/--tls-key/--client-ca: choose mutual TLS or plaintext loopback")
		}
		var missing []string
		for _, f := range []struct{ name, v string }{{"--tls-cert", c.TLSCert}, {"--tls-key", c.TLSKey}, {"--client-ca", c.ClientCA}} {
			if f.v == "" {
				missing = append(missing, f.name)
			}
		}
		switch {
		case c.ClientCA == "":
			return fmt.Errorf("refusing a TLS listener on %s without --client-ca: TCP clients must present a certificate signed by it (mutual TLS only)", c.Listen)
		case len(missing) > 0:
			return fmt.Errorf("--listen %s with TLS needs %v", c.Listen, missing)
		}
		return nil
	}
	if !server.IsLoopbackHost(host) {
		return fmt.Errorf("refusing plaintext TCP on %s: only a loopback address may be served without TLS; give --tls-cert, --tls-key and --client-ca for mutual TLS", c.Listen)
	}
	if !c.InsecureLoopback {
		return fmt.Errorf("--listen %s without TLS needs --insecure-loopback (any local process could connect as the identity %s); or give --tls-cert, --tls-key and --client-ca", c.Listen, server.LoopbackID)
	}
	return nil
}

// listenTCP opens the TCP listener checkListen accepted, or serves the one
// systemd passed (from); nil without --listen. plaintext reports a
// loopback listener without TLS; src is the TLS configuration a reload
// replaces (nil when plaintext).
func listenTCP(c Config, from net.Listener) (l net.Listener, plaintext bool, src *server.TLSSource, err error) {
	if c.Listen == "" {
		return nil, false, nil, nil
	}
	if c.TLSCert == "" && c.InsecureLoopback {
		if from != nil {
			l, err = server.ServeLoopback(from)
		} else {
			l, err = server.ListenLoopback(c.Listen)
		}
		return l, true, nil, err
	}
	src, err = server.NewTLSSource(tlsFiles(c))
	if err != nil {
		return nil, false, nil, err
	}
	if from == nil {
		if from, err = net.Listen("tcp", c.Listen); err != nil {
			return nil, false, nil, fmt.Errorf("listen on %s: %w", c.Listen, err)
		}
	}
	return server.ServeTLS(from, src), false, src, nil
}

func tlsFiles(c Config) server.TLSFiles {
	return server.TLSFiles{Cert: c.TLSCert, Key: c.TLSKey, ClientCA: c.ClientCA}
}

// loadAuthorizer returns the policy file's authorizer, or the default rule
// without one. rules is the policy's rule count (0: default rule).
func loadAuthorizer(c Config) (a server.Authorizer, rules int, err error) {
	if c.Policy == "" {
		return server.NewDefaultAuthorizer(), 0, nil
	}
	p, err := server.LoadPolicy(c.Policy)
	if err != nil {
		return nil, 0, err
	}
	return p, p.Len(), nil
}

// describeAuthorizer names the rules a loaded authorizer applies, for the
// log and the audit record of a reload: the policy file's path, its rule
// count and the SHA-256 of its contents, so that two different policies at
// one path are never recorded alike.
func describeAuthorizer(a server.Authorizer, path string) string {
	if p, ok := a.(*server.Policy); ok {
		return fmt.Sprintf("policy %s (%d rules, sha256 %s)", path, p.Len(), p.Digest())
	}
	return "default rule (no policy file)"
}
