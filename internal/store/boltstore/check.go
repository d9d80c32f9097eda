package boltstore

import (
	"context"
	"errors"
	"fmt"

	bolt "go.etcd.io/bbolt"

	"github.com/signerd/signerd/internal/errdefs"
)

// maxCheckErrors bounds the problems CheckPages reports.
const maxCheckErrors = 10

// CheckPages walks every page of the file with bbolt's consistency check
// (page types, free list, no page reachable twice or lost) in one read
// transaction. bbolt writes copy-on-write and switches meta pages last, so
// a crash (kill -9, power loss after fsync) leaves the last committed
// state; the crash-safety test uses this to show that nothing needs
// repair. It returns nil, or an error wrapping errdefs.ErrFailedPrecondition
// listing the first problems found.
func (s *Store) CheckPages(ctx context.Context) error {
	return s.viewLog(ctx, func(tx *bolt.Tx) error {
		var errs []error
		for err := range tx.Check() {
			if len(errs) < maxCheckErrors {
				errs = append(errs, err)
			}
		}
		if len(errs) > 0 {
			return fmt.Errorf("database %s is inconsistent: %w: %w", s.path, errors.Join(errs...), errdefs.ErrFailedPrecondition)
		}
		return nil
	})
}
