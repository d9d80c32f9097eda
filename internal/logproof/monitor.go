package logproof

import (
	"errors"
	"fmt"

	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"
)

// ErrNotExtending is the kind of a witness's refusal: the new checkpoint is
// validly signed but does not extend the one accepted before, so the log
// was rewritten (a fork: a split view or a rewritten history) or rolled back.
var ErrNotExtending = errors.New("checkpoint does not extend the accepted one")

// ErrFork and ErrRollback say how a checkpoint fails to extend: a tree
// that differs from the accepted one within its size, or a smaller tree.
// Both are errors.Is(err, ErrNotExtending).
var (
	ErrFork     error = &notExtending{"fork"}
	ErrRollback error = &notExtending{"rollback"}
)

type notExtending struct{ kind string }

func (e *notExtending) Error() string { return e.kind }
func (e *notExtending) Unwrap() error { return ErrNotExtending }

// ConsistencyFetcher returns an RFC 9162 consistency proof from the tree
// of size1 leaves to the tree of size2.
type ConsistencyFetcher func(size1, size2 uint64) ([][]byte, error)

// Extends decides whether next extends prev, both already opened with the
// log key: same origin, no fewer leaves, the same root at the same size,
// and a consistency proof (fetched only when needed) from prev to next.
// It returns whether a proof was checked.
func Extends(prev, next Checkpoint, fetch ConsistencyFetcher) (bool, error) {
	if prev.Origin != next.Origin {
		return false, fmt.Errorf("%w: origin %q, the accepted checkpoint's is %q", ErrCheckpoint, next.Origin, prev.Origin)
	}
	switch {
	case next.Size < prev.Size:
		return false, fmt.Errorf("%w: the new checkpoint has %d leaves, the accepted one %d", ErrRollback, next.Size, prev.Size)
	case next.Size == prev.Size:
		if !sameRoot(prev, next) {
			return false, fmt.Errorf("%w: two checkpoints of %d leaves with different roots (accepted %x, new %x)", ErrFork, next.Size, prev.Root, next.Root)
		}
		return false, nil
	case prev.Size == 0:
		// The empty tree is a prefix of every tree; RFC 9162 has no proof
		// for it. Its root must still be the empty root.
		if !sameRoot(prev, Checkpoint{Root: rfc6962.DefaultHasher.EmptyRoot()}) {
			return false, fmt.Errorf("%w: the accepted checkpoint of 0 leaves has root %x, not the empty tree's", ErrFork, prev.Root)
		}
		return false, nil
	}
	p, err := fetch(prev.Size, next.Size)
	if err != nil {
		return false, fmt.Errorf("consistency proof %d to %d: %w", prev.Size, next.Size, err)
	}
	if len(p) > 2*MaxProofHashes {
		return false, fmt.Errorf("%w: consistency proof of %d hashes", ErrFork, len(p))
	}
	for i, h := range p {
		if len(h) != HashSize {
			return false, fmt.Errorf("%w: consistency proof hash %d is %d bytes", ErrFork, i, len(h))
		}
	}
	if err := proof.VerifyConsistency(rfc6962.DefaultHasher, prev.Size, next.Size, p, prev.Root, next.Root); err != nil {
		return false, fmt.Errorf("%w: the consistency proof from %d to %d leaves does not verify: %v", ErrFork, prev.Size, next.Size, err)
	}
	return true, nil
}
