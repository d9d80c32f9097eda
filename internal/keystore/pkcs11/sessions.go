//go:build cgo

package pkcs11

import (
	"context"
	"errors"
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
	// shrunk counts the slots given up because the token answered
	// CKR_SESSION_COUNT: each keeps a token in sem for good, so the pool
	// never again tries to open more sessions than the token gave it.
	shrunk atomic.Int64
	// onShrink, if set, is told the pool's new size.
	onShrink func(size int)
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
//
// A token that refuses another session (CKR_SESSION_COUNT: other
// applications hold the rest, or it allows fewer than it said) shrinks the
// pool by one and the caller waits for a session someone else returns,
// rather than failing, as long as the pool still holds one.
func (p *sessionPool) get(ctx context.Context) (session, error) {
	var deadline <-chan time.Time
	for {
		select {
		case p.sem <- struct{}{}:
		default:
			if deadline == nil {
				t := time.NewTimer(p.timeout)
				defer t.Stop()
				deadline = t.C
			}
			select {
			case p.sem <- struct{}{}:
			case <-ctx.Done():
				return session{}, fmt.Errorf("waiting for a PKCS#11 session: %w", ctx.Err())
			case <-deadline:
				return session{}, fmt.Errorf("%w (%d in use for %s)", errPoolTimeout, p.size(), p.timeout)
			}
		}
		s, err := p.take()
		if err == nil || !errors.Is(err, p11.Error(p11.CKR_SESSION_COUNT)) {
			return s, err
		}
		if !p.shrink() {
			<-p.sem
			return session{}, err
		}
	}
}

// take returns an idle session of the current generation or opens one. The
// caller holds a slot of sem, which take gives back on failure unless the
// failure is CKR_SESSION_COUNT (get then decides).
func (p *sessionPool) take() (session, error) {
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
			if !errors.Is(err, p11.Error(p11.CKR_SESSION_COUNT)) {
				<-p.sem
			}
			return session{}, err
		}
		return session{h: h, gen: gen}, nil
	}
}

// shrink keeps the caller's slot of sem for good, if another slot is in
// use (its session will come back for the caller to reuse), and reports
// whether it did. With no other session open the token has none for us.
func (p *sessionPool) shrink() bool {
	for {
		n := p.shrunk.Load()
		// Slots held: ours, the shrunk ones, and the ones in use.
		if len(p.sem)-1-int(n) <= 0 {
			return false
		}
		if p.shrunk.CompareAndSwap(n, n+1) {
			if p.onShrink != nil {
				p.onShrink(p.size())
			}
			return true
		}
	}
}

// size is the number of sessions the pool may hold now.
func (p *sessionPool) size() int { return cap(p.sem) - int(p.shrunk.Load()) }

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
	if errors.Is(err, errOperationLeft) {
		p.discard(s)
		return
	}
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
