package softhsmtest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"

	"github.com/signerd/signerd/client"
	signerv1 "github.com/signerd/signerd/gen/signer/v1"
)

// http2Preface opens every HTTP/2 connection (RFC 9113 §3.4).
const http2Preface = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"

// TestBadClients: oversized requests, silent and slow connections, a flood
// of connections, calls cancelled or cut off halfway: none of it costs a
// well-behaved client a single call, and the daemon gives back every
// descriptor afterwards.
func TestBadClients(t *testing.T) {
	d := startDaemon(t, "--log-level", "info", "--handshake-timeout", "1s")
	key, _, _ := relPrepare(t, d)
	base := d.proc(t)
	good := relBackgroundSigner(t, d, key)

	t.Run("oversized requests", func(t *testing.T) {
		c := relDial(t, d)
		var wg sync.WaitGroup
		for range 4 {
			wg.Go(func() {
				for range 3 {
					ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
					_, err := c.Signer.Sign(ctx, &signerv1.SignRequest{KeyName: key, Digest: relDigest(), ArtifactName: strings.Repeat("x", 2<<20)})
					cancel()
					if status.Code(err) != codes.ResourceExhausted {
						t.Errorf("a 2 MiB request: %v, want RESOURCE_EXHAUSTED", err)
					}
				}
			})
		}
		wg.Wait()
		// The same connection goes on working.
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		if _, err := c.Signer.Sign(ctx, &signerv1.SignRequest{KeyName: key, Digest: relDigest()}); err != nil {
			t.Fatalf("a normal request after oversized ones: %v", err)
		}
	})

	t.Run("silent, slow and flooding connections", func(t *testing.T) {
		// 200 connections that never speak and 50 that send the HTTP/2
		// preface a byte at a time, slower than the handshake timeout.
		var conns []net.Conn
		for range 200 {
			conns = append(conns, relRawConn(t, d))
		}
		var slow sync.WaitGroup
		for range 50 {
			c := relRawConn(t, d)
			conns = append(conns, c)
			slow.Go(func() {
				for i := range len(http2Preface) {
					if _, err := c.Write([]byte{http2Preface[i]}); err != nil {
						return // closed by the daemon
					}
					time.Sleep(100 * time.Millisecond)
				}
			})
		}
		// A normal client signs meanwhile, and so does the background one.
		c := relDial(t, d)
		for range 10 {
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			_, err := c.Signer.Sign(ctx, &signerv1.SignRequest{KeyName: key, Digest: relDigest()})
			cancel()
			if err != nil {
				t.Fatalf("Sign during the flood: %v", err)
			}
		}
		// The daemon closes each of them after the handshake timeout (it
		// sends its own HTTP/2 settings first, then EOF).
		for _, rc := range conns {
			rc.SetReadDeadline(time.Now().Add(20 * time.Second))
			// EOF or a reset both mean the daemon closed it (a reset when
			// bytes a slow client sent were still unread); only the read
			// deadline passing means it kept the connection open.
			if _, err := io.ReadAll(rc); err != nil && !errors.Is(err, syscall.ECONNRESET) {
				t.Fatalf("a silent or slow connection was not closed by the daemon: %v", err)
			}
			rc.Close()
		}
		slow.Wait()
	})

	t.Run("calls cut off halfway", func(t *testing.T) {
		// A connection that dies in the middle of a frame.
		for range 50 {
			rc := relRawConn(t, d)
			rc.Write([]byte(http2Preface))
			rc.Write([]byte{0, 0, 0, 4, 0, 0, 0, 0, 0})                           // empty SETTINGS
			rc.Write([]byte{0, 0, 100, 1, 4, 0, 0, 0, 1, 0x82, 0x86, 0x84, 0x41}) // HEADERS announcing 100 bytes, 4 sent
			rc.Close()
		}
		// Calls abandoned by their client at random moments.
		c := relDial(t, d)
		var wg sync.WaitGroup
		for i := range 100 {
			wg.Go(func() {
				ctx, cancel := context.WithTimeout(context.Background(), time.Duration(i%10)*200*time.Microsecond)
				defer cancel()
				_, _ = c.Signer.Sign(ctx, &signerv1.SignRequest{KeyName: key, Digest: relDigest()})
			})
		}
		wg.Wait()
		// Health watchers whose connection is dropped.
		for range 20 {
			wc, err := client.DialUnix(d.socket)
			if err != nil {
				t.Fatal(err)
			}
			stream, err := wc.Health.Watch(context.Background(), &grpc_health_v1.HealthCheckRequest{})
			if err != nil {
				t.Fatal(err)
			}
			if _, err := stream.Recv(); err != nil {
				t.Fatal(err)
			}
			wc.Close()
		}
	})

	t.Run("more calls on one connection than it may have in flight", func(t *testing.T) {
		// 300 calls at once on one connection, against the default of 128
		// concurrent streams: the rest wait in the client, none fails.
		c := relDial(t, d)
		var wg sync.WaitGroup
		var failures atomic.Int64
		for range 300 {
			wg.Go(func() {
				ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
				defer cancel()
				if _, err := c.Health.Check(ctx, &grpc_health_v1.HealthCheckRequest{}); err != nil {
					if failures.Add(1) == 1 {
						t.Logf("first failure: %v", err)
					}
				}
			})
		}
		wg.Wait()
		if n := failures.Load(); n > 0 {
			t.Fatalf("%d of 300 concurrent calls on one connection failed", n)
		}
	})

	ok, failed := good.stop()
	if failed > 0 {
		t.Fatalf("the well-behaved client had %d failures (%d successes)", failed, ok)
	}
	t.Logf("the well-behaved client signed %d times meanwhile, without a failure", ok)
	if st := relHealth(t, relDial(t, d)); st != grpc_health_v1.HealthCheckResponse_SERVING {
		t.Fatalf("health %v after the bad clients, want SERVING", st)
	}
	var after relProc
	relWaitFor(t, "descriptors back to the level before the bad clients", 15*time.Second, func() bool {
		after = d.proc(t)
		return after.fds <= base.fds+4
	})
	t.Logf("daemon before: %v; after: %v", base, after)
}

// TestConnectionLimit: with --max-connections, a flood of silent
// connections holds at most that many descriptors in the daemon, and a
// normal client still gets through once the handshake timeout has cut the
// silent ones.
func TestConnectionLimit(t *testing.T) {
	const limit = 16
	d := startDaemon(t, "--log-level", "info", "--max-connections", "16", "--handshake-timeout", "1s")
	key, _, _ := relPrepare(t, d)
	base := d.proc(t)
	var conns []net.Conn
	for range 3 * limit {
		conns = append(conns, relRawConn(t, d))
	}
	var peak atomic.Int64
	stop := make(chan struct{})
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		for {
			select {
			case <-stop:
				return
			case <-time.After(50 * time.Millisecond):
			}
			if n := int64(d.proc(t).fds); n > peak.Load() {
				peak.Store(n)
			}
		}
	}()
	c := relDial(t, d)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := c.Signer.Sign(ctx, &signerv1.SignRequest{KeyName: key, Digest: relDigest()}); err != nil {
		t.Fatalf("Sign behind %d silent connections: %v", len(conns), err)
	}
	close(stop)
	<-sampled
	for _, rc := range conns {
		rc.Close()
	}
	t.Logf("%d silent connections against a limit of %d: daemon fds peaked at %d (before: %d)", len(conns), limit, peak.Load(), base.fds)
	if peak.Load() > int64(base.fds+limit+2) {
		t.Fatalf("the daemon held %d descriptors (before: %d, limit %d connections)", peak.Load(), base.fds, limit)
	}
}

// relRawConn opens a bare Unix connection to the daemon, closed when the
// test ends.
func relRawConn(t *testing.T, d *daemon) net.Conn {
	t.Helper()
	c, err := net.Dial("unix", d.socket)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// relSigner signs in the background, on its own connection, counting
// successes and failures.
type relSigner struct {
	ok, failed atomic.Int64
	cancel     context.CancelFunc
	done       chan struct{}
}

func relBackgroundSigner(t *testing.T, d *daemon, key string) *relSigner {
	t.Helper()
	c := relDial(t, d)
	ctx, cancel := context.WithCancel(context.Background())
	s := &relSigner{cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(s.done)
		for ctx.Err() == nil {
			cctx, ccancel := context.WithTimeout(ctx, 20*time.Second)
			_, err := c.Signer.Sign(cctx, &signerv1.SignRequest{KeyName: key, Digest: relDigest(), ArtifactName: "good.so"})
			ccancel()
			switch {
			case err == nil:
				s.ok.Add(1)
			case ctx.Err() != nil && (status.Code(err) == codes.Canceled || errors.Is(err, context.Canceled)):
			default:
				s.failed.Add(1)
				t.Logf("the well-behaved client: %v", err)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}()
	t.Cleanup(func() { s.stop() })
	return s
}

func (s *relSigner) stop() (ok, failed int64) {
	s.cancel()
	<-s.done
	return s.ok.Load(), s.failed.Load()
}

// TestConnectionFloodPerPeer: one local user opening connections in a loop
// and leaving them silent cannot lock another user out. The user holds at
// most --max-connections-per-peer of the --max-connections; its others are
// closed as soon as SO_PEERCRED names it, and the second user's verify goes
// through. The handshake timeout is far longer than the test, so without
// the per-peer bound the flood would hold every slot for its whole run.
func TestConnectionFloodPerPeer(t *testing.T) {
	needRoot(t, "one local user flooding the socket with silent connections cannot lock another user out (--max-connections-per-peer)")
	const total, perPeer = 16, 8
	d := startDaemon(t, "--log-level", "info", "--socket-mode", "0666",
		"--max-connections", fmt.Sprint(total), "--max-connections-per-peer", fmt.Sprint(perPeer), "--handshake-timeout", "10m")
	pkg := packageForNobody(t, d)

	// The flood: 4× the total limit of dialers, each re-dialling as soon
	// as the daemon closes its connection.
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	var dials, closed atomic.Int64
	for range 4 * total {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				c, err := net.Dial("unix", d.socket)
				if err != nil {
					time.Sleep(10 * time.Millisecond)
					continue
				}
				dials.Add(1)
				stop := context.AfterFunc(ctx, func() { c.Close() })
				_, _ = io.Copy(io.Discard, c) // until the daemon closes it
				stop()
				c.Close()
				closed.Add(1)
				time.Sleep(5 * time.Millisecond)
			}
		}()
	}
	defer func() { cancel(); wg.Wait() }()
	// Until the flood has had connections refused: it then holds its
	// share and keeps knocking.
	deadline := time.Now().Add(30 * time.Second)
	for closed.Load() < 4*total && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if closed.Load() < 4*total {
		t.Fatalf("the daemon closed %d of %d flood connections in 30s: no per-peer limit at work", closed.Load(), dials.Load())
	}

	expectExit(t, signctlAsNobody(t, d, "verify", pkg, "--org", "acme"), 0, "nobody verifies during root's connection flood")
	d.waitForLog(t, `msg="connection refused" peer=uid:0`)
	t.Logf("flood: %d connections opened by uid 0, %d closed by the daemon; uid 65534 verified", dials.Load(), closed.Load())
}
