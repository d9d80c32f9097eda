package boltstore

import (
	"sync/atomic"

	bolt "go.etcd.io/bbolt"
)

// Commits returns the number of write transactions committed to the file
// since it was created (bbolt's transaction id): each is one fsync'd
// commit. Signatures per commit under load show group commit working.
func (s *Store) Commits() uint64 {
	var id int
	_ = s.db.View(func(tx *bolt.Tx) error { id = tx.ID(); return nil })
	return uint64(id)
}

// IndexStats describe the log-structured digest index (sigindex.go).
type IndexStats struct {
	// Pending is how many signature records are indexed only in memory.
	Pending int
	// Merges and MergeFailures count merges into the persisted index.
	Merges, MergeFailures uint64
}

// mergeCounts are the counters behind IndexStats.
type mergeCounts struct{ ok, failed atomic.Uint64 }

// IndexStats returns the digest index's counters.
func (s *Store) IndexStats() IndexStats {
	return IndexStats{Pending: s.idx.len(), Merges: s.merges.ok.Load(), MergeFailures: s.merges.failed.Load()}
}
