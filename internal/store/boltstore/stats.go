package boltstore

import (
	"sync/atomic"

	bolt "go.etcd.io/bbolt"
)

// Commits returns the number of durable commits: the journal's group
// commits since Open (one write and one fdatasync each, journal.go) plus
// the write transactions committed to the file since it was created
// (bbolt's transaction id; the journal's applies are among them).
// Signatures per commit under load show group commit working.
func (s *Store) Commits() uint64 {
	var id int
	// Guarded: a scrape runs in the metrics server's goroutine, where a
	// fault in the map of a file cut short under the store would end the
	// process (only the journal's group commits are counted then).
	_ = Guard(s.path, func() error {
		return s.w.view(s.db, func(tx *bolt.Tx) error { id = tx.ID(); return nil })
	})
	n := uint64(id)
	if s.j != nil {
		n += s.j.groups.Load()
	}
	// A counter: never less than a scrape saw before (a fault above
	// counts the journal's groups alone).
	for {
		seen := s.commitsSeen.Load()
		if n <= seen {
			return seen
		}
		if s.commitsSeen.CompareAndSwap(seen, n) {
			return n
		}
	}
}

// JournalStats describe the signing path's journal (journal.go).
type JournalStats struct {
	// Groups are its group commits since Open, Applies the bbolt
	// transactions that wrote its records into the database.
	Groups, Applies uint64
	// Unapplied is how many acknowledged records are not yet applied.
	Unapplied int
}

// JournalStats returns the journal's counters (zero when read-only).
func (s *Store) JournalStats() JournalStats {
	if s.j == nil {
		return JournalStats{}
	}
	s.j.mu.Lock()
	n := len(s.j.unapplied)
	s.j.mu.Unlock()
	return JournalStats{Groups: s.j.groups.Load(), Applies: s.j.applies.Load(), Unapplied: n}
}

// IndexStats describe the log-structured digest index (sigindex.go).
type IndexStats struct {
	// Pending is how many signature records are indexed only in memory
	// (or, not yet applied from the journal, not indexed in the file).
	Pending int
	// Merges and MergeFailures count merges into the persisted index.
	Merges, MergeFailures uint64
}

// mergeCounts are the counters behind IndexStats.
type mergeCounts struct{ ok, failed atomic.Uint64 }

// IndexStats returns the digest index's counters.
func (s *Store) IndexStats() IndexStats {
	return IndexStats{Pending: s.pendingEntries(), Merges: s.merges.ok.Load(), MergeFailures: s.merges.failed.Load()}
}
