package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"time"

	"google.golang.org/grpc/credentials"
)

// transportCredentials dispatches the server-side handshake on the kind of
// connection, so that one grpc.Server serves every listener: Unix sockets
// are identified by SO_PEERCRED, connections of a ListenTLS listener by a
// verified client certificate, connections of a ListenLoopback listener
// as LoopbackID. Any other connection is refused.
type transportCredentials struct {
	log *slog.Logger
	// tlsTimeout (0: none of its own) bounds a TLS handshake from accept,
	// within connTimeout, gRPC's bound on all of a connection's handshakes
	// (transport and HTTP/2 preface), which the rest of them keeps.
	tlsTimeout, connTimeout time.Duration
	// refusedLog bounds the log lines about failed TLS handshakes (10 a
	// second): a peer needs no certificate to fail one, and may do so in
	// a loop.
	refusedLog *logGate
}

func newTransportCredentials(log *slog.Logger) transportCredentials {
	return transportCredentials{log: log, refusedLog: &logGate{every: time.Second, burst: 10}}
}

func (t transportCredentials) ServerHandshake(c net.Conn) (net.Conn, credentials.AuthInfo, error) {
	switch conn := c.(type) {
	case *limitedConn: // from LimitListener: the accepted connection is inside
		return conn.handshake(t)
	case *net.UnixConn:
		return peerCredentials{}.ServerHandshake(conn)
	case *tlsPendingConn:
		if t.tlsTimeout > 0 && (t.connTimeout <= 0 || t.tlsTimeout < t.connTimeout) {
			_ = conn.SetDeadline(conn.accepted.Add(t.tlsTimeout))
		}
		out, info, err := conn.creds.ServerHandshake(conn.Conn)
		if conn.pending != nil {
			conn.pending.free() // authenticated or refused: no longer pending
		}
		if t.tlsTimeout > 0 && t.connTimeout > 0 {
			_ = conn.SetDeadline(conn.accepted.Add(t.connTimeout))
		}
		if err != nil {
			if n, ok := t.refusedLog.allow(); ok {
				t.log.Info("TLS handshake refused", "remote", conn.RemoteAddr().String(), "err", err, "refused_unlogged_before", n)
			}
			return nil, nil, err
		}
		if ti, ok := info.(credentials.TLSInfo); ok && conn.src != nil {
			// Each call checks the chain against the CAs in force.
			info = &TLSPeer{TLSInfo: ti, src: conn.src, conn: out}
		}
		return out, info, nil
	case *loopbackConn:
		if ta, ok := conn.RemoteAddr().(*net.TCPAddr); !ok || !ta.IP.IsLoopback() {
			return nil, nil, fmt.Errorf("plaintext peer %s is not on loopback", conn.RemoteAddr())
		}
		return conn.Conn, LoopbackPeer{CommonAuthInfo: credentials.CommonAuthInfo{SecurityLevel: credentials.NoSecurity}}, nil
	}
	return nil, nil, fmt.Errorf("transport: refusing a %T connection from %s: not from a signerd listener", c, c.RemoteAddr())
}

func (transportCredentials) ClientHandshake(context.Context, string, net.Conn) (net.Conn, credentials.AuthInfo, error) {
	return nil, nil, errors.New("signerd's server credentials cannot dial")
}

func (transportCredentials) Info() credentials.ProtocolInfo {
	return credentials.ProtocolInfo{SecurityProtocol: "signerd"}
}
func (t transportCredentials) Clone() credentials.TransportCredentials { return t }
func (transportCredentials) OverrideServerName(string) error           { return nil }

// logGate lets up to burst log lines through per interval and counts the
// ones it holds back, which the next line let through reports. A nil gate
// lets everything through.
type logGate struct {
	every time.Duration
	burst int

	mu      sync.Mutex
	start   time.Time // of the current interval
	logged  int       // lines let through in it
	skipped int
}

// allow reports whether to log now, and how many lines were held back
// before this one.
func (g *logGate) allow() (skipped int, ok bool) {
	if g == nil {
		return 0, true
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if now := time.Now(); g.start.IsZero() || now.Sub(g.start) >= g.every {
		g.start, g.logged = now, 0
	}
	if g.logged >= g.burst {
		g.skipped++
		return 0, false
	}
	g.logged++
	skipped, g.skipped = g.skipped, 0
	return skipped, true
}
