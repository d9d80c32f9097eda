package server

import (
	"net"
	"sync"
	"time"

	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/keepalive"
)

// Limits on clients, so that a misbehaving one (oversized requests, silent
// or slow connections, connection floods, ping floods) costs the others
// nothing: request size (Options.MaxRecvMsgSize) and calls per connection
// (Options.MaxConcurrentStreams) are gRPC's own options; the rest are here.

// orDefault returns d, or def when d is zero.
func orDefault(d, def time.Duration) time.Duration {
	if d == 0 {
		return def
	}
	return d
}

// keepalivePolicy is what clients' keepalive pings must respect: no more
// often than KeepaliveMinTime (default 10s; gRPC's own is 5 minutes, which
// would disconnect loaders that keep a connection alive), allowed without
// calls in flight. A client pinging faster is sent GOAWAY.
func keepalivePolicy(opts Options) keepalive.EnforcementPolicy {
	return keepalive.EnforcementPolicy{MinTime: orDefault(opts.KeepaliveMinTime, 10*time.Second), PermitWithoutStream: true}
}

// keepaliveParams closes connections idle for MaxConnectionIdle (if set;
// clients reconnect transparently on their next call).
func keepaliveParams(opts Options) keepalive.ServerParameters {
	return keepalive.ServerParameters{MaxConnectionIdle: opts.MaxConnectionIdle}
}

// LimitListener returns a listener that holds at most n accepted
// connections open at once (n <= 0: l itself). When n are open, Accept
// waits for one to close, and further clients wait in the kernel's accept
// queue, so a flood of connections cannot exhaust descriptors or memory;
// the handshake timeout closes the silent ones.
//
// It is golang.org/x/net/netutil.LimitListener's idea, but its connections
// are a type of ours that the transport credentials see through: SO_PEERCRED
// needs the *net.UnixConn, which netutil's wrapper hides.
func LimitListener(l net.Listener, n int) net.Listener {
	if n <= 0 {
		return l
	}
	return &limitListener{Listener: l, sem: make(chan struct{}, n), done: make(chan struct{})}
}

type limitListener struct {
	net.Listener
	sem       chan struct{}
	closeOnce sync.Once
	done      chan struct{}
}

func (l *limitListener) Accept() (net.Conn, error) {
	select {
	case l.sem <- struct{}{}:
	case <-l.done:
		return nil, net.ErrClosed
	}
	c, err := l.Listener.Accept()
	if err != nil {
		<-l.sem
		return nil, err
	}
	return &limitedConn{Conn: c, slot: &connSlot{release: func() { <-l.sem }}}, nil
}

func (l *limitListener) Close() error {
	err := l.Listener.Close()
	l.closeOnce.Do(func() { close(l.done) })
	return err
}

// connSlot is one connection's place under the limit, freed once.
type connSlot struct {
	once    sync.Once
	release func()
}

func (s *connSlot) free() { s.once.Do(s.release) }

// limitedConn frees its slot when closed.
type limitedConn struct {
	net.Conn
	slot *connSlot
}

func (c *limitedConn) Close() error {
	err := c.Conn.Close()
	c.slot.free()
	return err
}

// handshake runs the transport credentials' handshake on the connection
// the listener accepted and keeps the result under the limit. On failure
// gRPC closes c, which frees the slot.
func (c *limitedConn) handshake(t transportCredentials) (net.Conn, credentials.AuthInfo, error) {
	out, info, err := t.ServerHandshake(c.Conn)
	if err != nil {
		return nil, nil, err
	}
	return &limitedConn{Conn: out, slot: c.slot}, info, nil
}
