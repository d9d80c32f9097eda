package etcdstore

import (
	"context"
	"fmt"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// CheckHealth implements store.HealthChecker with a linearizable read of
// the schema key: etcd answers it only through a leader that still has a
// quorum, so it fails exactly when writes (signature records) would.
// WithCountOnly keeps the answer a few bytes whatever the key holds.
func (s *Store) CheckHealth(ctx context.Context) error {
	if _, err := s.cli.Get(ctx, s.l.schema(), clientv3.WithCountOnly()); err != nil {
		return fmt.Errorf("etcd has no quorum or cannot be reached: %w", err)
	}
	return nil
}
