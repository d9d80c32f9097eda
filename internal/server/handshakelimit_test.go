package server

import (
	"crypto/tls"
	"errors"
	"log/slog"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc/credentials"
)

// TCP connections count against their source address from accept, before
// any handshake: one source gets at most its share of the connections in
// their TLS handshake, all sources together at most the total share, and
// a handshake that ends (here: cut off by the TLS budget) gives its slot
// back.
func TestUnauthenticatedShare(t *testing.T) {
	raw, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var refused atomic.Int64
	pending := newHandshakeLimiter(3, 2, func() { refused.Add(1) })
	l := limitListen(&tlsListener{Listener: raw, creds: credentials.NewTLS(&tls.Config{})}, 16, newPeerLimiter(100, nil), pending, nil, nil)
	defer l.Close()
	accepted := acceptAll(l)
	dial := func(src string) net.Conn {
		t.Helper()
		d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}}
		c, err := d.Dial("tcp", raw.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	next := func(what string) net.Conn {
		t.Helper()
		select {
		case c := <-accepted:
			return c
		case <-time.After(10 * time.Second):
			t.Fatalf("%s was not accepted", what)
		}
		return nil
	}
	waitRefused := func(n int64) {
		t.Helper()
		for i := 0; refused.Load() < n && i < 1000; i++ {
			time.Sleep(10 * time.Millisecond)
		}
		if got := refused.Load(); got != n {
			t.Fatalf("refused %d connections, want %d", got, n)
		}
	}

	for range 5 {
		dial("127.0.0.1")
	}
	first := next("the first silent connection")
	next("the second silent connection")
	waitRefused(3) // the other three: over 127.0.0.1's share of 2
	dial("127.0.0.2")
	next("another source's connection")
	dial("127.0.0.3")
	waitRefused(4) // the total share of 3 is taken
	select {
	case c := <-accepted:
		t.Fatalf("a connection from %s got in beyond the total share", c.RemoteAddr())
	default:
	}

	// A silent client's handshake runs out of its TLS budget; its slot
	// comes back and the next source gets in.
	creds := newTransportCredentials(slog.New(slog.DiscardHandler))
	creds.tlsTimeout, creds.connTimeout = 50*time.Millisecond, time.Minute
	if _, _, err := first.(*limitedConn).handshake(creds); err == nil {
		t.Fatal("a silent client passed the TLS handshake")
	} else if ne := net.Error(nil); !errors.As(err, &ne) || !ne.Timeout() {
		t.Fatalf("silent client's handshake: %v, want a timeout", err)
	}
	first.Close()
	dial("127.0.0.3")
	next("a connection once a handshake ended")
	pending.mu.Lock()
	total, bySource := pending.total, len(pending.bySource)
	pending.mu.Unlock()
	if total != 3 || bySource != 3 {
		t.Fatalf("pending handshakes: %d from %d sources, want 3 from 3", total, bySource)
	}
}

// IPv4 sources count one by one; IPv6 ones by /64, the block one host
// routinely holds.
func TestHandshakeSource(t *testing.T) {
	for _, tc := range []struct{ ip, want string }{
		{"127.0.0.1", "host:127.0.0.1"},
		{"192.0.2.7", "host:192.0.2.7"},
		{"::ffff:192.0.2.7", "host:192.0.2.7"},
		{"2001:db8:1:2:3:4:5:6", "net:2001:db8:1:2::/64"},
		{"2001:db8:1:2:ffff::1", "net:2001:db8:1:2::/64"},
		{"2001:db8:1:3::1", "net:2001:db8:1:3::/64"},
		{"::1", "net:::/64"},
	} {
		if got := handshakeSource(net.ParseIP(tc.ip)); got != tc.want {
			t.Errorf("%s: %q, want %q", tc.ip, got, tc.want)
		}
	}
}

// acceptAll accepts l's connections into the returned channel (up to 16
// unread), which is closed when Accept fails (l closed).
func acceptAll(l net.Listener) <-chan net.Conn {
	accepted := make(chan net.Conn, 16)
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				close(accepted)
				return
			}
			accepted <- c
		}
	}()
	return accepted
}
