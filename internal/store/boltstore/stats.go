package boltstore

import bolt "go.etcd.io/bbolt"

// Commits returns the number of write transactions committed to the file
// since it was created (bbolt's transaction id): each is one fsync'd
// commit. Signatures per commit under load show group commit working.
func (s *Store) Commits() uint64 {
	var id int
	_ = s.db.View(func(tx *bolt.Tx) error { id = tx.ID(); return nil })
	return uint64(id)
}
