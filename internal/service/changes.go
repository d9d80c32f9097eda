package service

import (
	"context"

	"github.com/signerd/signerd/internal/store"
)

// FollowStoreChanges keeps the caches right when other processes write the
// same store (several replicas on etcd): if the store implements
// store.ChangeNotifier, a goroutine drops every cached entry on each
// notification, until ctx ends. The returned channel is closed when that
// goroutine has stopped (at once for a store that only this process
// writes, such as bbolt, whose changes all pass through invalidatingStore).
//
// The caches hold an org's resolved trust and keys by name and fingerprint,
// which Sign checks for revocation on every call; so a trust removal or a
// key revocation made through another replica is enforced here as soon as
// its notification arrives.
func (s *Service) FollowStoreChanges(ctx context.Context) <-chan struct{} {
	done := make(chan struct{})
	raw := s.store
	if is, ok := raw.(invalidatingStore); ok {
		raw = is.Store
	}
	n, ok := raw.(store.ChangeNotifier)
	if !ok {
		close(done)
		return done
	}
	changes := n.WatchChanges(ctx)
	go func() {
		defer close(done)
		for range changes {
			s.cache.invalidate()
		}
	}()
	return done
}
