package server

import (
	"errors"
	"net"
	"path/filepath"
	"testing"
	"time"
)

// LimitListener holds at most n connections: the next Accept waits until
// one closes, and Close ends a waiting Accept.
func TestLimitListener(t *testing.T) {
	raw, err := net.Listen("unix", filepath.Join(t.TempDir(), "s.sock"))
	if err != nil {
		t.Fatal(err)
	}
	l := LimitListener(raw, 2)
	defer l.Close()
	var clients []net.Conn
	for range 3 {
		c, err := net.Dial("unix", raw.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		clients = append(clients, c)
	}
	a1, err := l.Accept()
	if err != nil {
		t.Fatal(err)
	}
	a2, err := l.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer a2.Close()
	third := make(chan net.Conn, 1)
	go func() {
		c, err := l.Accept()
		if err != nil {
			t.Error(err)
		}
		third <- c
	}()
	select {
	case <-third:
		t.Fatal("a third connection was accepted while two were open")
	default:
	}
	// The accepted connection is what the transport handshake sees
	// through: SO_PEERCRED needs the *net.UnixConn.
	if _, ok := a1.(*limitedConn).Conn.(*net.UnixConn); !ok {
		t.Fatalf("accepted %T inside the limit, want *net.UnixConn", a1.(*limitedConn).Conn)
	}
	a1.Close()
	a1.Close() // a second Close must not free a second slot
	select {
	case c := <-third:
		c.Close()
	case <-time.After(30 * time.Second):
		t.Fatal("closing a connection did not let the next one in")
	}

	// With two slots taken again (a2 and a new one), Accept waits; Close
	// ends the wait.
	c4, err := net.Dial("unix", raw.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c4.Close()
	a4, err := l.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer a4.Close()
	waiting := make(chan error, 1)
	go func() {
		_, err := l.Accept()
		waiting <- err
	}()
	l.Close()
	select {
	case err := <-waiting:
		if !errors.Is(err, net.ErrClosed) {
			t.Fatalf("Accept after Close: %v, want net.ErrClosed", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("Close did not end a waiting Accept")
	}
	if LimitListener(raw, 0) != raw {
		t.Fatal("LimitListener(l, 0) should be l itself")
	}
}

// A connection that fails its handshake frees its slot when gRPC closes it.
func TestLimitedConnHandshakeFailure(t *testing.T) {
	a, b := net.Pipe()
	defer b.Close()
	freed := 0
	lc := &limitedConn{Conn: a, slot: &connSlot{release: func() { freed++ }}}
	if _, _, err := lc.handshake(newTransportCredentials(nil)); err == nil {
		t.Fatal("a pipe passed the handshake")
	}
	lc.Close()
	lc.Close()
	if freed != 1 {
		t.Fatalf("slot freed %d times, want 1", freed)
	}
}
