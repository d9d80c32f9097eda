package server

import (
	"log/slog"
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
func LimitListener(l net.Listener, n int) net.Listener { return limitListen(l, n, nil, nil, nil, nil) }

// limitListen is LimitListener plus, when peers is not nil, a bound on the
// connections of each peer, and when pending is not nil, a bound on the
// TLS connections still in their handshake, and when budget is not nil,
// its peers' unread answers are counted (answers.go). A TCP connection
// counts against its source address from accept; a Unix one from the
// handshake, which is SO_PEERCRED and waits for nothing. log (optional)
// hears of refusals.
func limitListen(l net.Listener, n int, peers *peerLimiter, pending *handshakeLimiter, budget *inflight, log *slog.Logger) net.Listener {
	if n <= 0 && peers == nil && pending == nil && budget == nil {
		return l
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	ll := &limitListener{Listener: l, peers: peers, pending: pending, budget: budget, log: log, done: make(chan struct{})}
	if n > 0 {
		ll.sem = make(chan struct{}, n)
	}
	return ll
}

type limitListener struct {
	net.Listener
	sem       chan struct{}     // nil: no bound on the total
	peers     *peerLimiter      // nil: no bound per peer
	pending   *handshakeLimiter // nil: no bound on TLS handshakes
	budget    *inflight         // nil: answers are not counted (answers.go)
	log       *slog.Logger
	closeOnce sync.Once
	done      chan struct{}
}

func (l *limitListener) Accept() (net.Conn, error) {
	for {
		release := func() {}
		if l.sem != nil {
			select {
			case l.sem <- struct{}{}:
			case <-l.done:
				return nil, net.ErrClosed
			}
			release = func() { <-l.sem }
		}
		c, err := l.Listener.Accept()
		if err != nil {
			release()
			return nil, err
		}
		lc := &limitedConn{Conn: c, slot: &connSlot{release: release}, peers: l.peers, budget: l.budget}
		// A refused connection is closed here and the loop accepts the
		// next: an error from Accept would stop gRPC's Serve.
		if l.admit(lc) {
			return lc, nil
		}
	}
}

// admit counts a TCP connection against its source address before a byte
// of it is read: a peer that never completes a handshake must not hold
// more than its share of slots. It closes the connection and reports
// false when the source is over its bound.
func (l *limitListener) admit(c *limitedConn) bool {
	ta, ok := c.Conn.RemoteAddr().(*net.TCPAddr)
	if !ok {
		return true
	}
	key := "host:" + ta.IP.String()
	if _, ok := l.Listener.(*loopbackListener); ok {
		key = loopbackKey // as peerKey names its calls
	}
	if l.peers != nil {
		if err := l.peers.acquire(key); err != nil {
			if l.peers.shouldLog(key) {
				l.log.Warn("connection refused", "peer", key, "err", err)
			}
			c.Close()
			return false
		}
		c.peerKey = key
		listenerSlot := c.slot
		c.slot = &connSlot{release: func() { l.peers.release(key); listenerSlot.free() }}
	}
	if p, ok := c.Conn.(*tlsPendingConn); ok && l.pending != nil {
		source := handshakeSource(ta.IP)
		if err := l.pending.acquire(source); err != nil {
			if n, ok := l.pending.shouldLog(); ok {
				l.log.Warn("unauthenticated connection refused", "peer", source, "refused_since_last_log", n, "err", err)
			}
			c.Close()
			return false
		}
		// Freed when the TLS handshake ends, or with the connection.
		p.pending = &connSlot{release: func() { l.pending.release(source) }}
		outer := c.slot
		c.slot = &connSlot{release: func() { p.pending.free(); outer.free() }}
	}
	return true
}

func (l *limitListener) Close() error {
	err := l.Listener.Close()
	l.closeOnce.Do(func() { close(l.done) })
	return err
}

// connSlot is one connection's place under the limits, freed once.
type connSlot struct {
	once    sync.Once
	release func()
}

func (s *connSlot) free() { s.once.Do(s.release) }

// limitedConn frees its slot when closed.
type limitedConn struct {
	net.Conn
	slot  *connSlot
	peers *peerLimiter
	// peerKey is set when the connection was counted against its peer at
	// accept (TCP); the handshake then does not count it again.
	peerKey string
	// budget, on an accepted connection, is the per-peer budget its
	// handshake gives the connection it hands gRPC; answers, on that one,
	// counts what it writes (answers.go).
	budget  *inflight
	answers *answerConn
}

func (c *limitedConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if c.answers != nil && n > 0 {
		c.answers.read(p[:n])
	}
	return n, err
}

func (c *limitedConn) Write(p []byte) (int, error) {
	n, err := c.Conn.Write(p)
	if c.answers != nil && n > 0 {
		c.answers.wrote(p[:n])
	}
	return n, err
}

// RemoteAddr carries the connection's answer count to the stats handler.
func (c *limitedConn) RemoteAddr() net.Addr {
	if c.answers != nil {
		return &trackedAddr{Addr: c.Conn.RemoteAddr(), answers: c.answers}
	}
	return c.Conn.RemoteAddr()
}

func (c *limitedConn) Close() error {
	err := c.Conn.Close()
	c.slot.free()
	return err
}

// handshake runs the transport credentials' handshake on the connection
// the listener accepted and keeps the result under the limits: the peer it
// identified takes one of its own slots (unless accept already counted
// it), or the connection is refused. On failure gRPC closes c, which frees
// the listener's slot.
func (c *limitedConn) handshake(t transportCredentials) (net.Conn, credentials.AuthInfo, error) {
	out, info, err := t.ServerHandshake(c.Conn)
	if err != nil {
		return nil, nil, err
	}
	slot := c.slot
	if c.peers != nil && c.peerKey == "" {
		key := peerKey(info, c.Conn.RemoteAddr())
		if err := c.peers.acquire(key); err != nil {
			if c.peers.shouldLog(key) {
				t.log.Warn("connection refused", "peer", key, "err", err)
			}
			return nil, nil, err
		}
		listenerSlot := c.slot
		slot = &connSlot{release: func() { c.peers.release(key); listenerSlot.free() }}
		// Whichever of the two connections gRPC closes — the accepted one
		// or the one handed back here — frees both slots, once.
		c.slot = slot
	}
	lc := &limitedConn{Conn: out, slot: slot}
	if c.budget != nil {
		lc.answers = newAnswerConn(c.budget, peerKey(info, c.Conn.RemoteAddr()))
	}
	return lc, info, nil
}
