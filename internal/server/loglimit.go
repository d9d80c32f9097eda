package server

import (
	"sync"
	"time"
)

// Lines about failed calls ("call refused", "call failed") are bounded
// per caller and status code: a caller refused in a loop (20,000 denied
// calls a second from one uid, in a review) otherwise wrote a line each,
// megabytes a second, and under systemd spent journald's rate limit so
// that the daemon's other lines (HSM faults, TLS refusals) were dropped.
// The audit log already aggregates refusals the same way; the metrics
// count every call.
const (
	// callLogBurst lines of one caller and code are written per window.
	callLogBurst = 10
	// callLogWindow is that window.
	callLogWindow = 10 * time.Second
	// callLogKeys bounds the keys remembered; past it they are forgotten
	// wholesale (callers are uids and hosts, codes a handful).
	callLogKeys = 4096
)

// callLogLimiter decides which lines about failed calls are written.
type callLogLimiter struct {
	now func() time.Time

	mu   sync.Mutex
	keys map[string]*callLogSpan
}

type callLogSpan struct {
	start         time.Time
	written, held int
}

func newCallLogLimiter() *callLogLimiter {
	return &callLogLimiter{now: time.Now, keys: map[string]*callLogSpan{}}
}

// allow reports whether to write a line for key, how many of key's lines
// the window before held back (to say so on this one), and whether this is
// the window's last line written in full (to say that more are counted).
func (l *callLogLimiter) allow(key string) (write bool, heldBefore int, last bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	w := l.keys[key]
	if w == nil || now.Sub(w.start) >= callLogWindow {
		if w != nil {
			heldBefore = w.held
		} else if len(l.keys) >= callLogKeys {
			clear(l.keys)
		}
		l.keys[key] = &callLogSpan{start: now, written: 1}
		return true, heldBefore, callLogBurst == 1
	}
	if w.written < callLogBurst {
		w.written++
		return true, 0, w.written == callLogBurst
	}
	w.held++
	return false, 0, false
}

// flush returns, and forgets, the keys whose window has ended with lines
// held back: a caller refused in a burst and then gone would otherwise
// never have its count said (the next window's first line says it).
func (l *callLogLimiter) flush() map[string]int {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	var out map[string]int
	for k, w := range l.keys {
		if now.Sub(w.start) < callLogWindow {
			continue
		}
		if w.held > 0 {
			if out == nil {
				out = map[string]int{}
			}
			out[k] = w.held
		}
		delete(l.keys, k)
	}
	return out
}
