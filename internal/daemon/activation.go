package daemon

import (
	"fmt"
	"net"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/coreos/go-systemd/v22/activation"
)

// passed are the listeners systemd handed over (socket activation), matched
// to the configuration: unix is the socket at --socket, tcp the one at
// --listen. Either may be nil; the daemon then opens it itself.
type passed struct {
	unix, tcp net.Listener
}

func (p passed) close() {
	for _, l := range []net.Listener{p.unix, p.tcp} {
		if l != nil {
			l.Close()
		}
	}
}

// passedListeners takes the sockets of LISTEN_FDS (and clears the
// variables, so nothing started later inherits them). Each must be a
// stream listener whose address is the configured one: a socket unit and a
// config file that disagree stop start-up rather than serve on an address
// the operator did not choose, or with TLS settings meant for another.
func passedListeners(cfg Config) (passed, error) {
	var p passed
	for _, f := range activation.Files(true) {
		l, err := net.FileListener(f)
		name := f.Name()
		f.Close() // FileListener holds its own descriptor
		if err != nil {
			p.close()
			return passed{}, fmt.Errorf("socket activation: %s is not a stream socket signerd can listen on: %w", name, err)
		}
		if err := p.take(cfg, name, l); err != nil {
			l.Close()
			p.close()
			return passed{}, fmt.Errorf("socket activation: %w", err)
		}
	}
	return p, nil
}

// take assigns one passed listener to its place in p.
func (p *passed) take(cfg Config, name string, l net.Listener) error {
	switch a := l.Addr().(type) {
	case *net.UnixAddr:
		want, err := filepath.Abs(cfg.Socket)
		if err != nil {
			return err
		}
		if filepath.Clean(a.Name) != want {
			return fmt.Errorf("%s is the Unix socket %s, but signerd's socket setting is %s: make ListenStream= in signerd.socket and socket in signerd.conf the same path", name, a.Name, cfg.Socket)
		}
		if p.unix != nil {
			return fmt.Errorf("%s: the Unix socket %s was passed twice", name, a.Name)
		}
		p.unix = l
	case *net.TCPAddr:
		if cfg.Listen == "" {
			return fmt.Errorf("%s is the TCP socket %s, but no listen setting says how to serve it (mutual TLS or --insecure-loopback)", name, a)
		}
		if !sameTCPAddr(cfg.Listen, a) {
			return fmt.Errorf("%s is the TCP socket %s, but signerd's listen setting is %s: make ListenStream= in signerd.socket and listen in signerd.conf agree", name, a, cfg.Listen)
		}
		if p.tcp != nil {
			return fmt.Errorf("%s: a second TCP socket %s (signerd serves one)", name, a)
		}
		p.tcp = l
	default:
		return fmt.Errorf("%s is a %s socket; signerd serves Unix and TCP stream sockets", name, l.Addr().Network())
	}
	return nil
}

// sameTCPAddr reports whether the configured HOST:PORT names the bound
// address a: the same port, and the same IP, or both every interface, or
// "localhost" and a loopback IP.
func sameTCPAddr(listen string, a *net.TCPAddr) bool {
	host, port, err := net.SplitHostPort(listen)
	if err != nil {
		return false
	}
	if n, err := strconv.Atoi(port); err != nil || n != a.Port {
		return false
	}
	switch {
	case host == "" || host == "0.0.0.0" || host == "::":
		return a.IP.IsUnspecified()
	case strings.EqualFold(host, "localhost"):
		return a.IP.IsLoopback()
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.Equal(a.IP)
}
