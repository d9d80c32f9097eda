package boltstore

import (
	"sync"

	bolt "go.etcd.io/bbolt"

	"github.com/signerd/signerd/internal/store"
)

// revokedSet is the key versions revoked in this file, in memory, so that
// the journal's writer can refuse a signature record whose version a
// revocation committed before it (store.RevokedBeforeRecorded) without a
// transaction per group. A Sign reads its key before it signs; a revoke
// that commits between that read and the record must not be followed by
// the record. The writer's check and RevokeKeyVersions' commit both run
// holding the journal's writer lock (j.wmu), and the set is filled by the
// revocation's OnCommit, so the check sees every revocation committed
// before the group it decides and none that failed.
type revokedSet struct {
	mu sync.Mutex
	m  map[versionRef]struct{}
}

type versionRef struct {
	name    string
	version uint32
}

// add records k's revoked versions.
func (r *revokedSet) add(k store.Key) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, v := range store.RevokedVersions(k) {
		if r.m == nil {
			r.m = make(map[versionRef]struct{})
		}
		r.m[versionRef{k.Name, v}] = struct{}{}
	}
}

func (r *revokedSet) has(name string, version uint32) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	_, ok := r.m[versionRef{name, version}]
	return ok
}

// loadRevoked fills r from the keys bucket at Open: the set then holds
// every revocation in the file, not only this process's.
func loadRevoked(tx *bolt.Tx, r *revokedSet) error {
	keys, err := bucket(tx, bucketKeyKeys)
	if err != nil {
		return err
	}
	return keys.ForEach(func(name, raw []byte) error {
		k, err := decodeJSON[store.Key](name, raw)
		if err != nil {
			return err
		}
		r.add(k)
		return nil
	})
}
