//go:build cgo

package pkcs11

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	p11 "github.com/miekg/pkcs11"
)

// fakeSessions counts what the pool opens and closes.
type fakeSessions struct {
	mu           sync.Mutex
	next         p11.SessionHandle
	open, closed map[p11.SessionHandle]bool
}

func newFakePool(size int, timeout time.Duration) (*sessionPool, *fakeSessions) {
	f := &fakeSessions{open: map[p11.SessionHandle]bool{}, closed: map[p11.SessionHandle]bool{}}
	p := newSessionPool(size, timeout,
		func() (p11.SessionHandle, error) {
			f.mu.Lock()
			defer f.mu.Unlock()
			f.next++
			f.open[f.next] = true
			return f.next, nil
		},
		func(h p11.SessionHandle) {
			f.mu.Lock()
			defer f.mu.Unlock()
			delete(f.open, h)
			f.closed[h] = true
		})
	return p, f
}

func (f *fakeSessions) counts() (open, closed int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.open), len(f.closed)
}

func TestSessionPoolReusesAndBounds(t *testing.T) {
	p, f := newFakePool(2, 20*time.Millisecond)
	ctx := context.Background()
	a, _ := p.get(ctx)
	p.put(a)
	b, _ := p.get(ctx)
	if a.h != b.h {
		t.Fatalf("idle session %d not reused (got %d)", a.h, b.h)
	}
	c, err := p.get(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// Full: the third waits for the timeout, then fails.
	if _, err := p.get(ctx); !errors.Is(err, errPoolTimeout) {
		t.Fatalf("third get: %v, want errPoolTimeout", err)
	}
	// ...or for ctx.
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := p.get(cctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("get with a cancelled ctx: %v", err)
	}
	if open, _ := f.counts(); open != 2 {
		t.Fatalf("%d sessions open, want 2", open)
	}
	p.put(c)

	// A session handed back wakes a waiter. A pool whose timeout no loaded
	// machine reaches: whether the waiter blocks before the put or comes
	// after it, it gets the returned session and no new one is opened.
	wp, wf := newFakePool(1, time.Minute)
	held, err := wp.get(ctx)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan session)
	go func() { d, _ := wp.get(context.Background()); done <- d }()
	time.Sleep(5 * time.Millisecond)
	wp.put(held)
	if d := <-done; d.h != held.h {
		t.Fatalf("waiter got %d, want the returned %d", d.h, held.h)
	}
	if open, _ := wf.counts(); open != 1 {
		t.Fatalf("%d sessions open, want 1", open)
	}
}

func TestSessionPoolInvalidate(t *testing.T) {
	p, f := newFakePool(4, time.Second)
	ctx := context.Background()
	var ss []session
	for range 3 {
		s, _ := p.get(ctx)
		ss = append(ss, s)
	}
	p.put(ss[0])
	// ss[1] breaks: the idle ss[0] is closed at once, ss[2] when it returns.
	p.release(ss[1], p11.Error(p11.CKR_SESSION_HANDLE_INVALID))
	if open, closed := f.counts(); open != 1 || closed != 2 {
		t.Fatalf("after the break: %d open, %d closed; want 1, 2", open, closed)
	}
	fresh, _ := p.get(ctx)
	// A second report of the same breakage keeps sessions opened since.
	p.release(ss[2], p11.Error(p11.CKR_SESSION_CLOSED))
	p.put(fresh)
	if open, _ := f.counts(); open != 1 {
		t.Fatalf("%d sessions open after a stale report, want the fresh one", open)
	}
	// Other errors return the session to the pool.
	s, _ := p.get(ctx)
	p.release(s, p11.Error(p11.CKR_DATA_LEN_RANGE))
	if again, _ := p.get(ctx); again.h != s.h {
		t.Fatal("session not reused after an unrelated error")
	}
}
