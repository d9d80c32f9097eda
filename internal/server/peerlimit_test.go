package server

import (
	"errors"
	"log/slog"
	"net"
	"path/filepath"
	"testing"

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
	l := limitListen(raw, 10, peers, nil, nil)
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
	l := limitListen(raw, 4, peers, nil, nil)
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
	if got := peerKey(LoopbackPeer{}, tcp); got != "host:192.0.2.7" {
		t.Errorf("tcp: %q", got)
	}
	if newPeerLimiter(0, nil) != nil {
		t.Error("a zero per-peer limit should mean no limiter")
	}
}
