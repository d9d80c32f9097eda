package boltstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	bolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"

	"github.com/signerd/signerd/internal/errdefs"
)

// The helpers below are the only places that open transactions. Functions
// that take a *bolt.Tx (appendAudit, indexVersion, loadOrg, …) never open
// one of their own, so several of them compose into one transaction. (A tx
// carried in the context, as containerd does, would let Store methods nest;
// none needs to yet.)

// view runs fn in a read-only transaction (wedge.go says when it may not).
func (s *Store) view(ctx context.Context, fn func(*bolt.Tx) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	return mapBoltErr(s.w.view(s.db, fn))
}

// updateTx runs fn in a read-write transaction and returns after the
// commit is on disk; a panic out of it wedges the store (wedge.go).
func (s *Store) updateTx(ctx context.Context, fn func(*bolt.Tx) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	return mapBoltErr(s.w.update(s.db, fn))
}

// viewLog is view for readers of the log (audit records, signature
// records, the tree): it first applies what the journal has acknowledged,
// so they see every record returned to a caller before they were called.
func (s *Store) viewLog(ctx context.Context, fn func(*bolt.Tx) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if s.j != nil {
		if err := s.j.sync(); err != nil {
			return err
		}
	}
	return s.view(ctx, fn)
}

// update is the store's only read-write transaction outside the journal
// (journal.go) and the digest index's merges. It holds the journal's
// writer and applies every frame first, so that the audit records fn
// appends follow those the journal acknowledged, and then gives the
// journal the new head.
func (s *Store) update(ctx context.Context, fn func(*bolt.Tx) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if s.j == nil {
		return s.updateTx(ctx, fn)
	}
	s.j.wmu.Lock()
	defer s.j.wmu.Unlock()
	s.j.mu.Lock()
	failed := s.j.failed
	s.j.mu.Unlock()
	if failed != nil {
		// The journal may hold records this write would have to follow
		// (or the log is damaged): append nothing until a restart.
		return failed
	}
	if err := s.j.drain(); err != nil {
		return err
	}
	err := s.updateTx(ctx, fn)
	if rerr := s.j.reloadHead(); rerr != nil && err == nil {
		err = rerr
	}
	return err
}

// errReadOnly is what a write to a store opened read-only returns.
var errReadOnly = fmt.Errorf("database opened read-only: %w", errdefs.ErrFailedPrecondition)

// mapBoltErr gives bbolt's own errors an errdefs kind; errors that already
// carry a kind (returned by our transaction functions) pass through.
func mapBoltErr(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, bolterrors.ErrDatabaseNotOpen):
		return fmt.Errorf("database closed: %w", errdefs.ErrUnavailable)
	case errors.Is(err, bolterrors.ErrDatabaseReadOnly):
		return fmt.Errorf("database opened read-only: %w", errdefs.ErrFailedPrecondition)
	case hasKind(err):
		return err
	default:
		return fmt.Errorf("database: %w", errors.Join(errdefs.ErrInternal, err))
	}
}

var kinds = []error{
	errdefs.ErrInvalidArgument, errdefs.ErrNotFound, errdefs.ErrAlreadyExists,
	errdefs.ErrFailedPrecondition, errdefs.ErrPermissionDenied, errdefs.ErrUnauthenticated,
	errdefs.ErrUnavailable, errdefs.ErrResourceExhausted, errdefs.ErrInternal,
	context.Canceled, context.DeadlineExceeded,
}

func hasKind(err error) bool {
	for _, k := range kinds {
		if errors.Is(err, k) {
			return true
		}
	}
	return false
}

// bucket returns the named bucket under the root. A missing bucket means the
// file was damaged after migration: ErrInternal.
func bucket(tx *bolt.Tx, name []byte) (*bolt.Bucket, error) {
	root := tx.Bucket(bucketKeyRoot)
	if root == nil {
		return nil, fmt.Errorf("bucket %s missing: %w", bucketKeyRoot, errdefs.ErrInternal)
	}
	b := root.Bucket(name)
	if b == nil {
		return nil, fmt.Errorf("bucket %s/%s missing: %w", bucketKeyRoot, name, errdefs.ErrInternal)
	}
	return b, nil
}

// getJSON decodes the value at k in b into a T; ok is false if k is absent.
func getJSON[T any](b *bolt.Bucket, k []byte) (v T, ok bool, err error) {
	raw := b.Get(k)
	if raw == nil {
		return v, false, nil
	}
	v, err = decodeJSON[T](k, raw)
	return v, err == nil, err
}

// decodeJSON decodes the value raw stored at k.
func decodeJSON[T any](k, raw []byte) (v T, err error) {
	if err := json.Unmarshal(raw, &v); err != nil {
		return v, fmt.Errorf("decode %q: %w", k, errors.Join(errdefs.ErrInternal, err))
	}
	return v, nil
}

// putJSON stores v at k in b as JSON.
func putJSON(b *bolt.Bucket, k []byte, v any) error {
	raw, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("encode %q: %w", k, errors.Join(errdefs.ErrInternal, err))
	}
	return b.Put(k, raw)
}
