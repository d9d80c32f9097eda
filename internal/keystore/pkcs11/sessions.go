//go:build cgo

package pkcs11

import (
	"context"
	"fmt"
	"sync/atomic"
	"time"

	p11 "github.com/miekg/pkcs11"
)

// session is a pooled session handle and the pool generation it was opened
// in; sessions of an older generation are closed instead of reused.
type session struct {
	h   p11.SessionHandle
	gen uint64
}

// sessionPool bounds and reuses the sessions of the Ed25519 and import paths.
// Opening a session per request would cost a round trip to the token each
// time; an unbounded number would exhaust it.
//
// sem holds one token per session that exists or is being opened, so at most
// cap(sem) sessions are ever open; idle holds the open sessions nobody is
// using. Waiters queue on sem in FIFO order, which keeps tail latency close
// to the median under load.
type sessionPool struct {
	open    func() (p11.SessionHandle, error)
	close   func(p11.SessionHandle)
	timeout time.Duration

	sem  chan struct{}
	idle chan session
	gen  atomic.Uint64
}

func newSessionPool(size int, timeout time.Duration, open func() (p11.SessionHandle, error), close func(p11.SessionHandle)) *sessionPool {
	return &sessionPool{
		open:    open,
		close:   close,
		timeout: timeout,
		sem:     make(chan struct{}, size),
		idle:    make(chan session, size),
	}
}

// get returns a session, reusing an idle one when possible. It waits at most
// the pool timeout for a free slot and honours ctx. The caller MUST hand the
// session back with put or discard.
func (p *sessionPool) get(ctx context.Context) (session, error) {
	select {
	case p.sem <- struct{}{}:
	default:
		t := time.NewTimer(p.timeout)
		defer t.Stop()
		select {
		case p.sem <- struct{}{}:
		case <-ctx.Done():
			return session{}, fmt.Errorf("waiting for a PKCS#11 session: %w", ctx.Err())
		case <-t.C:
			return session{}, fmt.Errorf("%w (%d in use for %s)", errPoolTimeout, cap(p.sem), p.timeout)
		}
	}
	for {
		select {
		case s := <-p.idle:
			if s.gen != p.gen.Load() {
				p.close(s.h)
				continue
			}
			return s, nil
		default:
		}
		// Read the generation first: a session opened while the pool is
		// being invalidated is then treated as stale, never the reverse.
		gen := p.gen.Load()
		h, err := p.open()
		if err != nil {
			<-p.sem
			return session{}, err
		}
		return session{h: h, gen: gen}, nil
	}
}

// put returns a healthy session for reuse.
func (p *sessionPool) put(s session) {
	if s.gen != p.gen.Load() {
		p.close(s.h)
	} else {
		// Never blocks: idle has room for every session sem allows.
		p.idle <- s
	}
	<-p.sem
}

// discard closes a session that failed and frees its slot.
func (p *sessionPool) discard(s session) {
	p.close(s.h)
	<-p.sem
}

// release puts s back, or discards it when err says it is broken. A broken
// session usually means the token closed all of ours (C_CloseAllSessions,
// a token reset), so the whole generation is invalidated with it.
func (p *sessionPool) release(s session, err error) {
	switch classify(err) {
	case classSession:
		p.invalidate(s.gen)
		p.discard(s)
	case classDevice:
		p.discard(s)
	default:
		p.put(s)
	}
}

// invalidate ends generation from, if it is still the current one: idle
// sessions are closed now, busy ones when they come back. Many goroutines
// see the same breakage; only the first to report it ends the generation,
// so sessions opened since are kept.
func (p *sessionPool) invalidate(from uint64) {
	if p.gen.CompareAndSwap(from, from+1) {
		p.drainIdle()
	}
}

func (p *sessionPool) drainIdle() {
	for {
		select {
		case s := <-p.idle:
			p.close(s.h)
		default:
			return
		}
	}
}

// closeAll closes every idle session. The caller MUST ensure none is in use
// (KeyStore.Close holds the operations lock exclusively).
func (p *sessionPool) closeAll() { p.drainIdle() }
