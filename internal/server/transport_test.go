package server

import (
	"bytes"
	"crypto/tls"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/credentials"
)

// Failed TLS handshakes cost a peer nothing (no certificate needed), so
// their log lines are bounded: a burst per interval, the next line let
// through saying how many were held back.
func TestTLSRefusalLogBounded(t *testing.T) {
	var out bytes.Buffer
	creds := newTransportCredentials(slog.New(slog.NewTextHandler(&out, nil)))
	creds.refusedLog.every = time.Hour // nothing but this test's reset starts a new interval
	burst := creds.refusedLog.burst
	fail := func() {
		t.Helper()
		a, b := net.Pipe()
		defer b.Close()
		go func() { _, _ = b.Write([]byte("GET / HTTP/1.1\r\n\r\n")); b.Close() }()
		pending := &tlsPendingConn{Conn: a, creds: credentials.NewTLS(&tls.Config{MinVersion: tls.VersionTLS13}), accepted: time.Now()}
		if _, _, err := creds.ServerHandshake(pending); err == nil {
			t.Fatal("a plaintext HTTP request passed the TLS handshake")
		}
		a.Close()
	}
	for range 200 {
		fail()
	}
	if n := strings.Count(out.String(), "TLS handshake refused"); n != burst {
		t.Fatalf("%d log lines for 200 failed handshakes, want %d:\n%s", n, burst, out.String())
	}
	creds.refusedLog.mu.Lock()
	creds.refusedLog.start = time.Time{}.Add(time.Nanosecond) // the interval has passed
	creds.refusedLog.mu.Unlock()
	fail()
	want := fmt.Sprintf("refused_unlogged_before=%d", 200-burst)
	if got := out.String(); strings.Count(got, "TLS handshake refused") != burst+1 || !strings.Contains(got, want) {
		t.Fatalf("after the interval: want one more line saying %s:\n%s", want, got)
	}
}
