package server

import (
	"fmt"
	"net"
	"sync"
	"time"

	"github.com/signerd/signerd/internal/errdefs"
)

// handshakeLimiter bounds the TCP connections still in their TLS handshake:
// before it, nothing tells a client with a certificate from a stranger
// holding a socket open, so such connections get a small share of the
// slots, in all and per source address, and the transport credentials give
// them a short time (Options.TLSHandshakeTimeout). A flood of silent
// connections from a few addresses then holds a few slots for a few
// seconds, and every other source's handshake finds room.
type handshakeLimiter struct {
	max, perSource int
	// onRefuse is told about each refused connection (metrics); optional.
	onRefuse func()

	mu       sync.Mutex
	total    int
	bySource map[string]int
	refused  int // since the last log line
	lastLog  time.Time
}

func newHandshakeLimiter(max, perSource int, onRefuse func()) *handshakeLimiter {
	if max <= 0 && perSource <= 0 {
		return nil
	}
	return &handshakeLimiter{max: max, perSource: perSource, onRefuse: onRefuse, bySource: map[string]int{}}
}

// acquire takes a pending-handshake slot for source, or fails when all of
// them, or source's share, are taken.
func (h *handshakeLimiter) acquire(source string) error {
	h.mu.Lock()
	n := h.bySource[source]
	var err error
	switch {
	case h.perSource > 0 && n >= h.perSource:
		err = fmt.Errorf("%s already has %d connections in their TLS handshake, the most one source may (--max-unauthenticated-connections-per-peer): %w",
			source, n, errdefs.ErrResourceExhausted)
	case h.max > 0 && h.total >= h.max:
		err = fmt.Errorf("%d connections are in their TLS handshake, the most allowed (--max-unauthenticated-connections): %w",
			h.total, errdefs.ErrResourceExhausted)
	default:
		h.bySource[source] = n + 1
		h.total++
	}
	if err != nil {
		h.refused++
	}
	h.mu.Unlock()
	if err != nil && h.onRefuse != nil {
		h.onRefuse()
	}
	return err
}

func (h *handshakeLimiter) release(source string) {
	h.mu.Lock()
	if h.bySource[source] <= 1 {
		delete(h.bySource, source)
	} else {
		h.bySource[source]--
	}
	h.total--
	h.mu.Unlock()
}

// shouldLog rate-limits the log line about refusals to one every ten
// seconds and returns how many it covers.
func (h *handshakeLimiter) shouldLog() (int, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	now := time.Now()
	if now.Sub(h.lastLog) < 10*time.Second {
		return 0, false
	}
	n := h.refused
	h.refused, h.lastLog = 0, now
	return n, true
}

// handshakeSource is what a connection in its TLS handshake counts
// against: its IPv4 address, or the /64 of its IPv6 address — one host
// is routinely given a whole /64, and must not get a share per address.
func handshakeSource(ip net.IP) string {
	if v4 := ip.To4(); v4 != nil {
		return "host:" + v4.String()
	}
	return "net:" + (&net.IPNet{IP: ip.Mask(net.CIDRMask(64, 128)), Mask: net.CIDRMask(64, 128)}).String()
}
