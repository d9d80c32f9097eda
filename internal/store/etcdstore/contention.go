package etcdstore

import (
	"sync/atomic"
	"time"
)

// contention counts what the committer does to advance the audit head
// that every replica shares, so that operators (metrics) and tests can see
// replicas contending for it: how many transactions it sent, how each
// ended, and how long its commits took.
type contention struct {
	txns      atomic.Uint64 // transactions sent (each one etcd round trip)
	committed atomic.Uint64 // of those, committed
	conflicts atomic.Uint64 // refused because the head had moved
	refused   atomic.Uint64 // refused with the head unmoved
	unknown   atomic.Uint64 // not answered (resolved afterwards)
	records   atomic.Uint64 // audit records committed
	commitNS  atomic.Uint64 // wall time from a batch's first try to its commit
	// turnTimeouts counts turns (turns.go) that ended by their grace
	// period, no other replica having appended meanwhile.
	turnTimeouts atomic.Uint64
}

// Contention is a snapshot of the committer's counters since Open. Every
// transaction sent ends one way:
// Txns = Commits + Conflicts + Refused + Unknown.
type Contention struct {
	// Txns is the number of write transactions the committer sent to
	// etcd (a retry is one more).
	Txns uint64
	// Commits counts those that etcd reported committed.
	Commits uint64
	// Conflicts counts those refused because the audit head had moved
	// since the committer chained its batch to it: another replica
	// appended first. Each is retried on the new head.
	Conflicts uint64
	// Refused counts those refused with the head unmoved: what an
	// exclusive write read had changed (it is prepared again), or a
	// record past the head (a damaged log, reported).
	Refused uint64
	// Unknown counts those etcd did not answer (a timeout, a member
	// lost): each is resolved from the log before anything else is
	// chained, and counts nowhere else even if it had committed.
	Unknown uint64
	// Records is the number of audit records the committed ones appended.
	Records uint64
	// CommitTime is the total time from a batch's first try to its commit,
	// retries included; over Commits, the mean commit latency.
	CommitTime time.Duration
	// TurnTimeouts counts waits for another replica's turn (turns.go)
	// that ended by their grace period instead of its append.
	TurnTimeouts uint64
}

// Contention returns the committer's counters.
func (s *Store) Contention() Contention {
	return Contention{
		Txns:         s.cont.txns.Load(),
		Commits:      s.cont.committed.Load(),
		Conflicts:    s.cont.conflicts.Load(),
		Refused:      s.cont.refused.Load(),
		Unknown:      s.cont.unknown.Load(),
		Records:      s.cont.records.Load(),
		CommitTime:   time.Duration(s.cont.commitNS.Load()),
		TurnTimeouts: s.cont.turnTimeouts.Load(),
	}
}
