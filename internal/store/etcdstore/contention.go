package etcdstore

import (
	"sync/atomic"
	"time"
)

// contention counts what the committer does to advance the audit head
// that every replica shares, so that operators (metrics) and tests can see
// replicas contending for it: how many transactions it sent, how many lost
// the compare-and-swap to another replica and were prepared again, and how
// long its commits took.
type contention struct {
	txns      atomic.Uint64 // transactions sent (each one etcd round trip)
	conflicts atomic.Uint64 // of those, refused because the head had moved
	records   atomic.Uint64 // audit records committed
	commitNS  atomic.Uint64 // wall time from a batch's first try to its commit
	// turnTimeouts counts turns (turns.go) that ended by their grace
	// period, no other replica having appended meanwhile.
	turnTimeouts atomic.Uint64
}

// Contention is a snapshot of the committer's counters since Open.
type Contention struct {
	// Txns is the number of write transactions sent to etcd, committed or
	// not (a retry is one more).
	Txns uint64
	// Conflicts counts transactions refused because the audit head had
	// moved since the committer chained its batch to it: another replica
	// appended first. Each is retried on the new head.
	Conflicts uint64
	// Commits is the number of transactions committed (as Commits).
	Commits uint64
	// Records is the number of audit records those transactions appended.
	Records uint64
	// CommitTime is the total time from a transaction's first try to its
	// commit, retries included; over Commits, the mean commit latency.
	CommitTime time.Duration
	// TurnTimeouts counts waits for another replica's turn (turns.go)
	// that ended by their grace period instead of its append.
	TurnTimeouts uint64
}

// Contention returns the committer's counters.
func (s *Store) Contention() Contention {
	return Contention{
		Txns:         s.cont.txns.Load(),
		Conflicts:    s.cont.conflicts.Load(),
		Commits:      s.commits.Load(),
		Records:      s.cont.records.Load(),
		CommitTime:   time.Duration(s.cont.commitNS.Load()),
		TurnTimeouts: s.cont.turnTimeouts.Load(),
	}
}
