package service

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/signerd/signerd/internal/store"
	"github.com/signerd/signerd/internal/store/boltstore"
)

// testClock is a clock the test moves by hand.
type testClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *testClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *testClock) add(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

// aggregateCount is the count of an aggregate record (0 for others).
func aggregateCount(t *testing.T, r store.AuditRecord) int {
	t.Helper()
	if r.Operation != AggregateOperation {
		return 0
	}
	f, _, _ := strings.Cut(r.Detail, " ")
	n, err := strconv.Atoi(strings.TrimPrefix(f, "count="))
	if err != nil || !strings.HasPrefix(f, "count=") {
		t.Fatalf("aggregate record without a count: %q", r.Detail)
	}
	return n
}

// TestRefusalAggregation: per caller and reason, the first N refusals of a
// window are written in full and the rest counted into one aggregate record
// written when the window ends (by the next refusal or the ticker) or at
// shutdown; full records plus aggregate counts equal the refusals made,
// and other records (trust, policy) are never held back.
func TestRefusalAggregation(t *testing.T) {
	ctx := context.Background()
	st, err := boltstore.Open(ctx, filepath.Join(t.TempDir(), "signerd.db"), boltstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	clock := &testClock{now: time.Date(2026, 1, 2, 10, 0, 0, 0, time.UTC)}
	svc := New(st, newMemKeys(), Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), Now: clock.Now,
		RefusalWindow: time.Minute, RefusalFullRecords: 3})
	as := func(uid int) context.Context { return WithCaller(ctx, Caller{ID: fmt.Sprintf("uid:%d", uid)}) }

	made := map[string]int{} // caller/reason -> refusals made
	refuse := func(uid, n int) {
		for range n {
			svc.RecordDenial(as(uid), "/signer.v1.KeyService/CreateKey", "denied for the test")
			_, err := svc.Verify(as(uid), VerifyInput{Org: "made-up", Digest: digestOf("x")})
			if err == nil {
				t.Fatal("Verify for an unknown org succeeded")
			}
		}
		made[fmt.Sprintf("uid:%d/denied", uid)] += n
		made[fmt.Sprintf("uid:%d/UNKNOWN_ORG", uid)] += n
	}
	refuse(1000, 50)
	refuse(1001, 2)
	if err := svc.SetRequireSignatures(as(0), "acme", true); err != nil {
		t.Fatal(err)
	}
	clock.add(30 * time.Second)
	refuse(1000, 20)
	recs, _ := st.ListAudit(ctx, 0, 0)
	// 3 full records each for uid 1000's two reasons, 2 each for uid
	// 1001's, the policy record; no aggregate before the window ends.
	if len(recs) != 3+3+2+2+1 {
		t.Fatalf("%d records during the first window, want 11", len(recs))
	}
	// The window ends: the ticker writes its aggregates.
	clock.add(31 * time.Second)
	svc.writeRefusals(ctx, svc.refusals.tick(clock.Now()))
	recs, _ = st.ListAudit(ctx, 0, 0)
	if got := len(recs); got != 11+2 {
		t.Fatalf("%d records after the window ended, want 13 (two aggregates)", got)
	}
	refuse(1000, 5) // the next window: 3 in full again
	svc.FlushRefusals(ctx)

	recs, err = st.ListAudit(ctx, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]int{}
	for _, r := range recs {
		if r.Operation == "policy.set" {
			continue
		}
		k := r.Caller + "/" + r.Outcome
		if n := aggregateCount(t, r); n > 0 {
			got[k] += n
			if !strings.Contains(r.Detail, "from=2026-01-02T10:0") {
				t.Errorf("aggregate without its window: %q", r.Detail)
			}
			continue
		}
		got[k]++
	}
	if fmt.Sprint(got) != fmt.Sprint(made) {
		t.Fatalf("recorded %v, made %v", got, made)
	}
	if len(recs) != 13+3+3+2 {
		t.Fatalf("%d records for %d refusals, want 21", len(recs), 2*77)
	}
	if err := st.VerifyAudit(ctx); err != nil {
		t.Fatalf("audit chain: %v", err)
	}
}

// TestRefusalKeysBounded: a window counts at most maxRefusalKeys (caller,
// reason) pairs; refusals of further pairs are counted together.
func TestRefusalKeysBounded(t *testing.T) {
	l := newRefusalLimiter(time.Minute, 1)
	now := time.Date(2026, 1, 2, 10, 0, 0, 0, time.UTC)
	full := 0
	for i := range maxRefusalKeys + 100 {
		if ok, _ := l.admit(store.AuditEvent{Caller: "uid:1", Outcome: fmt.Sprint(i), Operation: "verify"}, now); ok {
			full++
		}
	}
	if full != maxRefusalKeys || len(l.counts) != maxRefusalKeys+1 {
		t.Fatalf("%d written in full, %d pairs counted; want %d and %d", full, len(l.counts), maxRefusalKeys, maxRefusalKeys+1)
	}
	evs := l.flush(now)
	if len(evs) != 1 || evs[0].Caller != refusalOverflow || !strings.HasPrefix(evs[0].Detail, "count=100 ") {
		t.Fatalf("aggregates = %+v", evs)
	}
}
