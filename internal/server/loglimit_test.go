package server

import (
	"testing"
	"time"
)

// TestCallLogLimiter: per caller and code, the first callLogBurst lines of
// a window are written (the last saying more are counted), the rest held
// back, and the next window's first line says how many were.
func TestCallLogLimiter(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	l := newCallLogLimiter()
	l.now = func() time.Time { return now }
	const key = "uid:65534 PermissionDenied"
	written, lastAt := 0, -1
	for i := range 1000 {
		w, held, last := l.allow(key)
		if held != 0 {
			t.Fatalf("line %d: held %d in the first window", i, held)
		}
		if w {
			written++
		}
		if last {
			lastAt = i
		}
	}
	if written != callLogBurst || lastAt != callLogBurst-1 {
		t.Fatalf("first window: %d lines written, the last marked at %d; want %d, at %d", written, lastAt, callLogBurst, callLogBurst-1)
	}
	// Another caller, or another code, has its own share.
	if w, _, _ := l.allow("uid:1000 PermissionDenied"); !w {
		t.Fatal("another caller's line was held back")
	}
	if w, _, _ := l.allow("uid:65534 NotFound"); !w {
		t.Fatal("another code's line was held back")
	}
	now = now.Add(callLogWindow)
	w, held, _ := l.allow(key)
	if !w || held != 1000-callLogBurst {
		t.Fatalf("next window: write %t, held back %d; want true, %d", w, held, 1000-callLogBurst)
	}
	// A window that ends with lines held back and no line after it is
	// reported by flush, once, and forgotten.
	for range callLogBurst + 5 {
		l.allow("uid:9 Unavailable")
	}
	now = now.Add(callLogWindow)
	if got := l.flush(); got["uid:9 Unavailable"] != 5 {
		t.Fatalf("flush: %v, want uid:9 Unavailable held back 5", got)
	}
	if got := l.flush(); len(got) != 0 {
		t.Fatalf("second flush: %v, want nothing", got)
	}
	// Keys are bounded: past callLogKeys they are forgotten wholesale.
	for i := range 2 * callLogKeys {
		l.allow(time.Duration(i).String())
	}
	if n := len(l.keys); n > callLogKeys {
		t.Fatalf("%d keys remembered, want at most %d", n, callLogKeys)
	}
}
