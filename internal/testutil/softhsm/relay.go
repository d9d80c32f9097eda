package softhsm

import (
	"net"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

// DelayRelay listens on a Unix socket of its own and relays every
// connection to target, holding each chunk of bytes for delay in each
// direction before passing it on, in order: a network link's latency
// without its bandwidth limit, for a PKCS#11 RPC (p11-kit) that would
// otherwise cross a Unix socket in microseconds. The machines this project
// runs on have no netem qdisc, so the delay is added here. It returns the
// socket's path and stops with the test.
func DelayRelay(t testing.TB, target string, delay time.Duration) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "relay-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	path := filepath.Join(dir, "s")
	l, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	var conns []net.Conn
	t.Cleanup(func() {
		l.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			in, err := l.Accept()
			if err != nil {
				return
			}
			out, err := net.Dial("unix", target)
			if err != nil {
				in.Close()
				continue
			}
			mu.Lock()
			conns = append(conns, in, out)
			mu.Unlock()
			wg.Add(2)
			go func() { defer wg.Done(); delayedCopy(out, in, delay) }()
			go func() { defer wg.Done(); delayedCopy(in, out, delay) }()
		}
	}()
	return path
}

type chunk struct {
	b   []byte
	due time.Time
}

// delayedCopy copies src to dst, each chunk delay after it was read; when
// either side ends, both are closed.
func delayedCopy(dst, src net.Conn, delay time.Duration) {
	ch := make(chan chunk, 1024)
	go func() {
		defer close(ch)
		for {
			buf := make([]byte, 64<<10)
			n, err := src.Read(buf)
			if n > 0 {
				ch <- chunk{buf[:n], time.Now().Add(delay)}
			}
			if err != nil {
				return
			}
		}
	}()
	for c := range ch {
		time.Sleep(time.Until(c.due))
		if _, err := dst.Write(c.b); err != nil {
			break
		}
	}
	src.Close()
	dst.Close()
	for range ch { // let the reader finish
	}
}

// ServeP11KitSocket is ServeP11Kit returning the server's socket path
// (P11_KIT_SERVER_ADDRESS is unix:path=<it>).
func (tok *Token) ServeP11KitSocket(t testing.TB) string {
	t.Helper()
	addr := tok.ServeP11Kit(t)
	return addr[len("unix:path="):]
}
