package service

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/signerd/signerd/internal/store"
)

// Refusal records (failed verifications, authorization denials) are the
// one kind of audit record a caller who may do nothing but verify can make
// the daemon write, each fsync'd: unbounded, a flood of them fills the disk,
// and a full disk stops signing (a signature is released only after its
// audit record). So they are bounded per caller: in each window the first
// RefusalFullRecords refusals of one caller for one reason are written in
// full, the rest only counted, and the count written as one aggregate
// record when the window ends (or the daemon stops), so that the full
// records and the aggregate counts add up to the refusals made. Signing,
// key, trust and policy records never pass through here.
const (
	// DefaultRefusalWindow is the window of refusal aggregation.
	DefaultRefusalWindow = time.Minute
	// DefaultRefusalFullRecords is how many refusals per caller and reason
	// each window writes in full.
	DefaultRefusalFullRecords = 10
	// maxRefusalKeys bounds the (caller, reason) pairs counted in one
	// window; refusals of further pairs are counted together under
	// refusalOverflow, never written in full.
	maxRefusalKeys = 4096
	// maxAggregateOps bounds the operations an aggregate record names.
	maxAggregateOps = 8
)

// AggregateOperation is the operation of an aggregate refusal record; its
// Caller and Outcome are the caller and reason counted, its Detail starts
// with "count=N".
const AggregateOperation = "refusals.aggregate"

// refusalOverflow is the caller and reason under which refusals are
// counted once maxRefusalKeys pairs are counted in a window.
const refusalOverflow = "(other callers and reasons)"

type refusalKey struct{ caller, reason string }

type refusalCount struct {
	full, counted int
	ops           []string // operations of the counted refusals (bounded)
}

// refusalLimiter decides which refusals are written in full and keeps the
// counts of the others.
type refusalLimiter struct {
	window time.Duration
	full   int // 0: every refusal is only counted

	mu     sync.Mutex
	start  time.Time // of the current window; zero before the first refusal
	counts map[refusalKey]*refusalCount
}

func newRefusalLimiter(window time.Duration, full int) *refusalLimiter {
	if window <= 0 {
		window = DefaultRefusalWindow
	}
	return &refusalLimiter{window: window, full: max(full, 0), counts: map[refusalKey]*refusalCount{}}
}

// admit reports whether the refusal ev is written in full; if not, it is
// counted. A window that has ended is closed first, and its aggregates
// returned for the caller to write.
func (l *refusalLimiter) admit(ev store.AuditEvent, now time.Time) (full bool, ended []store.AuditEvent) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.start.IsZero() {
		l.start = now.Truncate(l.window)
	} else if !now.Before(l.start.Add(l.window)) {
		ended = l.closeLocked(l.start.Add(l.window), now)
	}
	k := refusalKey{caller: ev.Caller, reason: ev.Outcome}
	c, ok := l.counts[k]
	if !ok {
		if len(l.counts) >= maxRefusalKeys {
			k = refusalKey{caller: refusalOverflow, reason: refusalOverflow}
			if c, ok = l.counts[k]; !ok {
				c = &refusalCount{full: l.full} // counted only
				l.counts[k] = c
			}
		} else {
			c = &refusalCount{}
			l.counts[k] = c
		}
	}
	if c.full < l.full {
		c.full++
		return true, ended
	}
	c.counted++
	if !slices.Contains(c.ops, ev.Operation) && len(c.ops) < maxAggregateOps {
		c.ops = append(c.ops, ev.Operation)
	}
	return false, ended
}

// flush closes the current window early (at shutdown) and returns its
// aggregates.
func (l *refusalLimiter) flush(now time.Time) []store.AuditEvent {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.start.IsZero() {
		return nil
	}
	return l.closeLocked(now, now)
}

// tick closes the window if it has ended by now.
func (l *refusalLimiter) tick(now time.Time) []store.AuditEvent {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.start.IsZero() || now.Before(l.start.Add(l.window)) {
		return nil
	}
	return l.closeLocked(l.start.Add(l.window), now)
}

// closeLocked ends the window at end and starts the one holding now. The
// map is replaced, not cleared: clear keeps a Go map's buckets, and one
// flood would then hold its peak forever.
func (l *refusalLimiter) closeLocked(end, now time.Time) []store.AuditEvent {
	var out []store.AuditEvent
	for k, c := range l.counts {
		if c.counted == 0 {
			continue
		}
		out = append(out, store.AuditEvent{
			Time:      now,
			Caller:    k.caller,
			Operation: AggregateOperation,
			Outcome:   k.reason,
			Detail: fmt.Sprintf("count=%d from=%s to=%s operations=%s: %d more refusals from %s, reason %s, beyond the first %d per caller and reason in the window, counted rather than written one by one",
				c.counted, l.start.UTC().Format(time.RFC3339), end.UTC().Format(time.RFC3339), strings.Join(c.ops, ","),
				c.counted, k.caller, k.reason, l.full),
		})
	}
	slices.SortFunc(out, func(a, b store.AuditEvent) int {
		return strings.Compare(a.Caller+"\x00"+a.Outcome, b.Caller+"\x00"+b.Outcome)
	})
	l.counts = map[refusalKey]*refusalCount{}
	l.start = now.Truncate(l.window)
	return out
}

// auditRefusal appends the record of a refusal (a denial, a failed
// verification), in full or counted toward its window's aggregate. It runs
// detached from the caller's context: a caller that cancels, or sends a
// tiny deadline, must not be able to keep its refused attempts out of the
// audit log. Failure to record is logged, not returned: the refusal stands
// either way.
func (s *Service) auditRefusal(ctx context.Context, ev store.AuditEvent) {
	full, ended := s.refusals.admit(ev, s.now())
	s.writeRefusals(ctx, ended)
	if full {
		s.writeRefusals(ctx, []store.AuditEvent{ev})
	}
}

func (s *Service) writeRefusals(ctx context.Context, evs []store.AuditEvent) {
	if len(evs) == 0 {
		return
	}
	actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), auditTimeout)
	defer cancel()
	for _, ev := range evs {
		if _, err := s.store.AppendAudit(actx, ev); err != nil {
			s.log.ErrorContext(ctx, "audit append failed for a refused call", "operation", ev.Operation, "err", err)
		}
	}
}

// RunRefusalAggregates writes each window's aggregate refusal records when
// the window ends, until ctx ends; FlushRefusals writes the last one.
func (s *Service) RunRefusalAggregates(ctx context.Context) {
	t := time.NewTicker(max(s.refusals.window/10, 100*time.Millisecond))
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			s.writeRefusals(ctx, s.refusals.tick(s.now()))
		}
	}
}

// FlushRefusals writes the aggregate records of the current window now:
// the daemon calls it at shutdown, after the last call, so that the counts
// add up.
func (s *Service) FlushRefusals(ctx context.Context) {
	s.writeRefusals(ctx, s.refusals.flush(s.now()))
}
