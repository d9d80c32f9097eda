package service

// The verifiable log as its readers see it: checkpoints, proofs and leaves
// assembled from the store's tree (store.LogReader) and the log key's
// checkpoints (LogCheckpoint, on demand through Checkpoint). Proofs are
// always against a signed checkpoint, never a bare root, so that a bundle
// handed out can be checked offline with the log key alone.

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strings"

	"github.com/signerd/signerd/internal/errdefs"
	"github.com/signerd/signerd/internal/logproof"
	"github.com/signerd/signerd/internal/store"
)

// MaxLogLeavesPage bounds ListLeaves: what one call can make the daemon
// read and hold.
const MaxLogLeavesPage = 1000

// LogBundle is the proof that one record is in the log.
type LogBundle struct {
	Origin         string
	Leaf           []byte
	LeafIndex      uint64
	TreeSize       uint64
	InclusionProof [][]byte
	Checkpoint     []byte
}

// SignedCheckpoint is a checkpoint note and its parsed body.
type SignedCheckpoint struct {
	Note []byte
	logproof.Checkpoint
}

// parseNote reads the body of a note the daemon signed itself; its
// signature is the log key's own, checked when it was made.
func parseNote(signed []byte) (SignedCheckpoint, error) {
	text, _, ok := strings.Cut(string(signed), "\n\n")
	if !ok {
		return SignedCheckpoint{}, fmt.Errorf("the log's checkpoint is not a signed note: %w", errdefs.ErrInternal)
	}
	cp, err := logproof.ParseCheckpoint(text + "\n")
	if err != nil {
		return SignedCheckpoint{}, fmt.Errorf("the log's checkpoint: %w: %w", errdefs.ErrInternal, err)
	}
	return SignedCheckpoint{Note: signed, Checkpoint: cp}, nil
}

// LogCheckpointAtLeast returns the latest checkpoint, or, when it covers
// fewer than minSize leaves, a new one signed now. A minSize beyond the
// log is FAILED_PRECONDITION.
func (s *Service) LogCheckpointAtLeast(ctx context.Context, minSize uint64) (SignedCheckpoint, error) {
	signed, err := s.LogCheckpoint(ctx)
	switch {
	case err == nil:
		cp, err := parseNote(signed)
		if err != nil || cp.Size >= max(minSize, 1) {
			return cp, err
		}
	case errors.Is(err, errdefs.ErrNotFound):
		// No checkpoint yet: sign the first now.
	default:
		return SignedCheckpoint{}, err
	}
	size, err := s.store.LogSize(ctx)
	if err != nil {
		return SignedCheckpoint{}, err
	}
	if size < minSize {
		return SignedCheckpoint{}, fmt.Errorf("no checkpoint of %d leaves: the log has %d: %w", minSize, size, errdefs.ErrFailedPrecondition)
	}
	if _, _, err := s.Checkpoint(ctx); err != nil {
		return SignedCheckpoint{}, err
	}
	if signed, err = s.LogCheckpoint(ctx); err != nil {
		return SignedCheckpoint{}, err
	}
	cp, err := parseNote(signed)
	if err != nil {
		return SignedCheckpoint{}, err
	}
	if cp.Size < minSize {
		return SignedCheckpoint{}, fmt.Errorf("signed a checkpoint of %d leaves, but the latest is of %d: %w", minSize, cp.Size, errdefs.ErrInternal)
	}
	return cp, nil
}

// LogSignatureProof is the proof bundle of the record of sig over digest,
// against a checkpoint that covers it. NOT_FOUND when the log holds no
// such record.
func (s *Service) LogSignatureProof(ctx context.Context, digest, sig []byte) (LogBundle, error) {
	if len(digest) != 32 {
		return LogBundle{}, fmt.Errorf("digest is %d bytes, want 32: %w", len(digest), errdefs.ErrInvalidArgument)
	}
	if len(sig) == 0 || len(sig) > 1024 {
		return LogBundle{}, fmt.Errorf("signature is %d bytes: %w", len(sig), errdefs.ErrInvalidArgument)
	}
	index, err := s.store.SignatureLeaf(ctx, digest, sig)
	if err != nil {
		return LogBundle{}, fmt.Errorf("the log's record of this signature: %w", err)
	}
	return s.LogInclusionProof(ctx, index, 0)
}

// LogInclusionProof is the proof bundle of leaf index against the
// checkpoint of size leaves; size 0 means the latest checkpoint, signed
// now when it does not cover the leaf. A size other than the latest
// checkpoint's is signed now if the log is that size, and otherwise
// refused: every bundle comes with its checkpoint.
func (s *Service) LogInclusionProof(ctx context.Context, index, size uint64) (LogBundle, error) {
	if index == math.MaxUint64 {
		// index+1 leaves would wrap to 0, "the latest checkpoint".
		return LogBundle{}, fmt.Errorf("no leaf %d: no log holds 2^64 leaves: %w", index, errdefs.ErrFailedPrecondition)
	}
	cp, err := s.LogCheckpointAtLeast(ctx, max(index+1, size))
	if err != nil {
		return LogBundle{}, err
	}
	if size != 0 && size != cp.Size {
		return LogBundle{}, fmt.Errorf("no signed checkpoint of %d leaves (the latest is of %d); ask for 0, the latest: %w", size, cp.Size, errdefs.ErrFailedPrecondition)
	}
	recs, err := s.store.ListAudit(ctx, index, 1)
	if err != nil {
		return LogBundle{}, err
	}
	if len(recs) != 1 || recs[0].Seq != index+1 {
		return LogBundle{}, fmt.Errorf("record %d, leaf %d of the log, cannot be read: %w", index+1, index, errdefs.ErrInternal)
	}
	proof, err := s.store.InclusionProof(ctx, index, cp.Size)
	if err != nil {
		return LogBundle{}, err
	}
	return LogBundle{Origin: cp.Origin, Leaf: store.EncodeAuditRecord(recs[0]), LeafIndex: index, TreeSize: cp.Size,
		InclusionProof: proof, Checkpoint: cp.Note}, nil
}

// LogConsistencyProof proves the tree of size2 leaves extends the tree of
// size1 leaves.
func (s *Service) LogConsistencyProof(ctx context.Context, size1, size2 uint64) ([][]byte, error) {
	return s.store.ConsistencyProof(ctx, size1, size2)
}

// LogLeaves returns at most limit (capped at MaxLogLeavesPage) leaves from
// index start, and the log's size.
func (s *Service) LogLeaves(ctx context.Context, start uint64, limit int) ([][]byte, uint64, error) {
	if limit <= 0 || limit > MaxLogLeavesPage {
		limit = MaxLogLeavesPage
	}
	size, err := s.store.LogSize(ctx)
	if err != nil {
		return nil, 0, err
	}
	if start >= size {
		return nil, size, nil
	}
	recs, err := s.store.ListAudit(ctx, start, limit)
	if err != nil {
		return nil, 0, err
	}
	leaves := make([][]byte, 0, len(recs))
	for i, r := range recs {
		if r.Seq != start+uint64(i)+1 {
			return nil, 0, fmt.Errorf("record %d read where %d was expected: %w", r.Seq, start+uint64(i)+1, errdefs.ErrInternal)
		}
		leaves = append(leaves, store.EncodeAuditRecord(r))
	}
	return leaves, size, nil
}
