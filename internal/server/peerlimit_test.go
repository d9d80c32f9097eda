package server

import (
	"errors"
	"io"
	"log/slog"
	"net"
	"path/filepath"
	"testing"
	"time"

	"google.golang.org/grpc/credentials"

	"github.com/signerd/signerd/internal/errdefs"
)

// Connections of one peer beyond MaxConnectionsPerPeer fail the handshake
// (so gRPC closes them and frees their listener slot); closing one lets
// the next in; the total limit still applies around it.
func TestPerPeerLimit(t *testing.T) {
	raw, err := net.Listen("unix", filepath.Join(t.TempDir(), "s.sock"))
	if err != nil {
		t.Fatal(err)
	}
	refused := 0
	peers := newPeerLimiter(2, func() { refused++ })
	l := limitListen(raw, 10, peers, nil, nil, nil)
	defer l.Close()
	creds := newTransportCredentials(slog.New(slog.DiscardHandler))

	// accept dials one connection and runs the server-side handshake on
	// it, as gRPC does right after Accept.
	accept := func() (net.Conn, error) {
		t.Helper()
		c, err := net.Dial("unix", raw.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		a, err := l.Accept()
		if err != nil {
			t.Fatal(err)
		}
		out, _, err := creds.ServerHandshake(a)
		if err != nil {
			a.Close() // what gRPC does with a failed handshake
			return nil, err
		}
		return out, nil
	}

	first, err := accept()
	if err != nil {
		t.Fatalf("first connection: %v", err)
	}
	if _, err := accept(); err != nil {
		t.Fatalf("second connection: %v", err)
	}
	_, err = accept()
	if !errors.Is(err, errdefs.ErrResourceExhausted) {
		t.Fatalf("third connection of the same uid: %v, want resource exhausted", err)
	}
	if refused != 1 {
		t.Fatalf("refusals reported: %d, want 1", refused)
	}
	if got := len(l.(*limitListener).sem); got != 2 {
		t.Fatalf("listener slots in use after the refusal: %d, want 2", got)
	}
	first.Close()
	first.Close() // a second Close must not free a second slot
	if got := len(l.(*limitListener).sem); got != 1 {
		t.Fatalf("listener slots in use after closing one of two connections twice: %d, want 1", got)
	}
	if _, err := accept(); err != nil {
		t.Fatalf("a connection after one closed: %v", err)
	}
	peers.mu.Lock()
	open := peers.open
	peers.mu.Unlock()
	if len(open) != 1 {
		t.Fatalf("peers tracked: %v, want one uid", open)
	}
	for k, n := range open {
		if n != 2 {
			t.Fatalf("%s holds %d connections, want 2", k, n)
		}
	}
}

// gRPC may close the connection it accepted rather than the one the
// handshake handed back (when its transport fails to start): the peer's
// slot must come back either way, once.
func TestPerPeerSlotFreedThroughAcceptedConn(t *testing.T) {
	raw, err := net.Listen("unix", filepath.Join(t.TempDir(), "s.sock"))
	if err != nil {
		t.Fatal(err)
	}
	peers := newPeerLimiter(1, nil)
	l := limitListen(raw, 4, peers, nil, nil, nil)
	defer l.Close()
	creds := newTransportCredentials(slog.New(slog.DiscardHandler))
	for i := range 3 { // with one slot per peer, each round needs the last one back
		c, err := net.Dial("unix", raw.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		a, err := l.Accept()
		if err != nil {
			t.Fatal(err)
		}
		if _, _, err := creds.ServerHandshake(a); err != nil {
			t.Fatalf("round %d: %v", i, err)
		}
		a.Close() // never the connection the handshake returned
		a.Close()
	}
	if got := len(l.(*limitListener).sem); got != 0 {
		t.Fatalf("listener slots in use after every connection closed: %d", got)
	}
}

func TestPeerKey(t *testing.T) {
	tcp := &net.TCPAddr{IP: net.ParseIP("192.0.2.7"), Port: 40000}
	for _, tc := range []struct {
		name string
		info UnixPeer
		addr net.Addr
		want string
	}{
		{"unix", UnixPeer{UID: 1000}, &net.UnixAddr{Name: "@"}, "uid:1000"},
	} {
		if got := peerKey(tc.info, tc.addr); got != tc.want {
			t.Errorf("%s: %q, want %q", tc.name, got, tc.want)
		}
	}
	// TCP peers count per host, whichever port or certificate they use.
	if got := peerKey(credentials.TLSInfo{}, tcp); got != "host:192.0.2.7" {
		t.Errorf("tcp: %q", got)
	}
	// The plaintext loopback listener's clients are one peer: any local
	// process may bind any loopback source, so 127.0.0.2, 127.0.0.3, …
	// must not each get a share of their own.
	for _, ip := range []string{"127.0.0.1", "127.0.0.2", "127.1.2.3", "::1"} {
		if got := peerKey(LoopbackPeer{}, &net.TCPAddr{IP: net.ParseIP(ip), Port: 1}); got != "host:loopback" {
			t.Errorf("plaintext loopback from %s: %q, want host:loopback", ip, got)
		}
	}
	if newPeerLimiter(0, nil) != nil {
		t.Error("a zero per-peer limit should mean no limiter")
	}
}

// TestLoopbackListenerOnePeer: on the plaintext loopback listener,
// connections from different loopback source addresses count against one
// peer; before, each address was a host of its own and one local user
// held every connection of the listener.
func TestLoopbackListenerOnePeer(t *testing.T) {
	raw, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	lb, err := ServeLoopback(raw)
	if err != nil {
		t.Fatal(err)
	}
	l := limitListen(lb, 16, newPeerLimiter(2, nil), nil, nil, nil)
	defer l.Close()
	accepted := acceptAll(l)
	var held []net.Conn
	for _, src := range []string{"127.0.0.1", "127.0.0.2", "127.0.0.3", "127.0.0.4"} {
		d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}}
		c, err := d.Dial("tcp", raw.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		held = append(held, c)
	}
	// Two are accepted (the peer's share); the others are closed at once,
	// which their clients see as EOF.
	for i := range 2 {
		select {
		case c := <-accepted:
			defer c.Close()
		case <-time.After(10 * time.Second):
			t.Fatalf("connection %d was not accepted", i)
		}
	}
	// Accepted in the order dialled: the last two are over the share.
	for i, c := range held[2:] {
		_ = c.SetReadDeadline(time.Now().Add(10 * time.Second)) // a bound on a hang
		if _, err := c.Read(make([]byte, 1)); !errors.Is(err, io.EOF) {
			t.Fatalf("connection from 127.0.0.%d: %v, want it closed (one peer, a share of 2)", i+3, err)
		}
	}
}
