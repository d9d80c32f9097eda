package etcdstore

import (
	"context"
	"sync"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// Replicas take turns at the shared audit head.
//
// Every group commit is one compare-and-swap on the head (commit.go). Two
// busy replicas that each send their next batch as soon as the previous
// one is answered send at the same moment: one wins, the other's
// transaction is refused after a full quorum round trip — etcd applies a
// transaction's compares only after raft has replicated and fsync'd the
// whole request, batch included — and both then send again together.
// Measured with two replicas under load, 0.8 of the transactions per
// commit were such conflicts, and every batch half as large, so the
// cluster did nearly three times the work per signature of one replica.
//
// Two things make them take turns instead:
//
//   - Each store watches the head key, so a replica learns of another's
//     append about when that replica does, and chains its next batch to
//     the new head instead of sending one that is bound to fail.
//   - A replica whose last batch was chained to another replica's append
//     (so both are busy) and that wrote the current head waits, before
//     its next batch, until another replica appends or for at most
//     turnGrace: the other replica is usually about to commit, and its
//     own batch grows meanwhile. Then it goes. A replica alone, or whose
//     last batch followed its own, never waits.
//
// Neither is needed for correctness: the compare on the head decides, and
// a stale head or a lost turn costs a retry, no more.

// headSeen is the newest head key the watch delivered, kept as read so
// that the committer decodes it as it decodes any head (setHead).
type headSeen struct {
	mu     sync.Mutex
	kv     *mvccpb.KeyValue
	signal chan struct{} // capacity 1: a newer head arrived
}

// turn is the committer's view of whose turn it is; owned by the
// committer goroutine.
type turn struct {
	ownRev         int64         // mod revision of the head this replica last wrote
	chainedForeign bool          // that commit followed another replica's append
	lastCommit     time.Time     // when it was answered
	rtt            time.Duration // moving average of a committed transaction's round trip
	gap            time.Duration // moving average of the wait for the other replica's append
}

// Bounds on how long a replica yields its turn.
const (
	minTurnGrace = time.Millisecond
	maxTurnGrace = 250 * time.Millisecond
)

// grace is how long after its own commit a replica waits for the other's:
// the other learns of the commit, sends, and is answered, so about one
// round trip plus two watch notifications. On a loaded machine the
// notifications take as long as the round trip, so it is whichever is
// longer of two round trips and twice the waits that ended by an append
// (a wait that ends by the grace period costs a conflict when the other
// was about to append after all).
func (t *turn) grace() time.Duration {
	return min(max(2*t.rtt+time.Millisecond, 2*t.gap, minTurnGrace), maxTurnGrace)
}

// ended records that another replica appended d after this one's commit.
func (t *turn) ended(d time.Duration) {
	if t.gap == 0 {
		t.gap = d
	} else {
		t.gap += (d - t.gap) / 4
	}
}

// committed records a committed transaction chained to the head whose mod
// revision was prevRev, answered rtt after it was sent.
func (t *turn) committed(prevRev, rev int64, rtt time.Duration) {
	t.chainedForeign = prevRev != t.ownRev
	t.ownRev = rev
	t.lastCommit = time.Now()
	if t.rtt == 0 {
		t.rtt = rtt
	} else {
		t.rtt += (rtt - t.rtt) / 4
	}
}

// adoptSeenHead takes the newest head the watch saw if it is newer than
// the committer's. One that does not decode makes the committer read the
// head afresh, and report it.
func (s *Store) adoptSeenHead() {
	if !s.head.known {
		return // read afresh (and pending attempts resolved) by commit
	}
	s.seen.mu.Lock()
	kv := s.seen.kv
	s.seen.mu.Unlock()
	if kv == nil || kv.ModRevision <= s.head.rev {
		return
	}
	if err := s.setHead([]*mvccpb.KeyValue{kv}); err != nil {
		s.head.known = false
	}
}

// awaitTurn waits, if this replica has just had its turn, until another
// replica appends or the grace period after its own commit ends (see the
// comment at the top of this file).
func (s *Store) awaitTurn() {
	s.adoptSeenHead()
	t := &s.turn
	if !s.head.known || s.head.rev != t.ownRev || !t.chainedForeign {
		return
	}
	wait := t.grace() - time.Since(t.lastCommit)
	if wait <= 0 {
		return
	}
	timer := time.NewTimer(wait)
	defer timer.Stop()
	for {
		select {
		case <-s.stop:
			return
		case <-timer.C:
			s.cont.turnTimeouts.Add(1)
			return
		case <-s.seen.signal:
			s.adoptSeenHead()
			if s.head.rev != t.ownRev {
				t.ended(time.Since(t.lastCommit))
				return
			}
		}
	}
}

// observeHead records the head as a watch event carried it.
func (s *Store) observeHead(kv *mvccpb.KeyValue) {
	s.seen.mu.Lock()
	newer := s.seen.kv == nil || kv.ModRevision > s.seen.kv.ModRevision
	if newer {
		s.seen.kv = kv
	}
	s.seen.mu.Unlock()
	if newer {
		select {
		case s.seen.signal <- struct{}{}:
		default:
		}
	}
}

// watchHead feeds observeHead until the store is closed, watching again
// after watchRetry whenever the watch ends. While it is down the
// committer only loses the hints: turns then end by their grace period,
// and a stale head costs a retry.
func (s *Store) watchHead() {
	defer close(s.headWatched)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		select {
		case <-s.stop:
			cancel()
		case <-ctx.Done():
		}
	}()
	for ctx.Err() == nil {
		wctx, wcancel := context.WithCancel(clientv3.WithRequireLeader(ctx))
		for resp := range s.cli.Watch(wctx, s.l.head()) {
			if resp.Err() != nil {
				break
			}
			for _, e := range resp.Events {
				if e.Type == mvccpb.PUT {
					s.observeHead(e.Kv)
				}
			}
		}
		wcancel()
		t := time.NewTimer(watchRetry)
		select {
		case <-ctx.Done():
		case <-t.C:
		}
		t.Stop()
	}
}
