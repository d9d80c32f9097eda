package server

import (
	"fmt"
	"net"
	"sync"
	"time"

	"google.golang.org/grpc/credentials"

	"github.com/signerd/signerd/internal/errdefs"
)

// peerLimiter bounds the connections each peer holds open, across every
// listener of the server, so that one local user (or one remote host)
// opening connections in a loop cannot take all of --max-connections from
// the others: its extra connections are closed at once — a TCP peer's at
// accept, by source address, before any handshake; a Unix peer's at the
// SO_PEERCRED handshake, which waits for nothing — and everyone else keeps
// being accepted.
type peerLimiter struct {
	max int
	// onRefuse is told about each refused connection (metrics); optional.
	onRefuse func()

	mu      sync.Mutex
	open    map[string]int
	lastLog map[string]time.Time
}

func newPeerLimiter(max int, onRefuse func()) *peerLimiter {
	if max <= 0 {
		return nil
	}
	return &peerLimiter{max: max, onRefuse: onRefuse, open: map[string]int{}, lastLog: map[string]time.Time{}}
}

// acquire takes one of key's slots, or fails when it holds max already.
func (p *peerLimiter) acquire(key string) error {
	p.mu.Lock()
	n := p.open[key]
	if n >= p.max {
		p.mu.Unlock()
		if p.onRefuse != nil {
			p.onRefuse()
		}
		return fmt.Errorf("%s already holds %d connections, the most one peer may (--max-connections-per-peer): %w",
			key, n, errdefs.ErrResourceExhausted)
	}
	p.open[key] = n + 1
	p.mu.Unlock()
	return nil
}

func (p *peerLimiter) release(key string) {
	p.mu.Lock()
	if p.open[key] <= 1 {
		delete(p.open, key)
	} else {
		p.open[key]--
	}
	p.mu.Unlock()
}

// shouldLog rate-limits the log line about a peer's refusals to one every
// ten seconds: a flood must not also flood the log.
func (p *peerLimiter) shouldLog(key string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	now := time.Now()
	if now.Sub(p.lastLog[key]) < 10*time.Second {
		return false
	}
	if len(p.lastLog) > 4096 { // bounded: forget old peers wholesale
		clear(p.lastLog)
	}
	p.lastLog[key] = now
	return true
}

// peerKey names the peer a connection counts against: the Unix user for
// socket peers (SO_PEERCRED), the remote host for TCP peers (mutual TLS or
// loopback), whatever port or certificate they use.
func peerKey(info credentials.AuthInfo, remote net.Addr) string {
	if u, ok := info.(UnixPeer); ok {
		return fmt.Sprintf("uid:%d", u.UID)
	}
	if _, ok := info.(LoopbackPeer); ok {
		return loopbackKey
	}
	remote = unwrapAddr(remote)
	if ta, ok := remote.(*net.TCPAddr); ok {
		return "host:" + ta.IP.String()
	}
	return "peer:" + remote.String()
}

// loopbackKey is every client of the plaintext loopback listener: they
// are all this host's processes, and any of them may bind a source
// address anywhere in 127.0.0.0/8, so counting each address as a host of
// its own let one local user hold every connection of the listener past
// --max-connections-per-peer (and spend as many request budgets).
const loopbackKey = "host:loopback"
