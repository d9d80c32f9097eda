package skill

import (
	"fmt"

	"github.com/signerd/signerd/internal/errdefs"
)

// ChainErrorKind says why a lineage check failed (spec §11.1; JS names).
type ChainErrorKind string

// Chain error kinds.
const (
	ChainNoPreviousHash ChainErrorKind = "no_previous_hash"
	ChainMismatch       ChainErrorKind = "mismatch"
)

// ChainError is a failed VerifyChain. It wraps
// errdefs.ErrFailedPrecondition.
type ChainError struct {
	// Kind says which check failed.
	Kind ChainErrorKind
	// Expected is previous.skill_hash, Got is current.previous_hash
	// (mismatch only).
	Expected, Got string
}

// Error uses upstream Go's messages.
func (e *ChainError) Error() string {
	if e.Kind == ChainNoPreviousHash {
		return "current signature has no previous_hash field"
	}
	return fmt.Sprintf("previous_hash mismatch: current.previous_hash = %s, previous.skill_hash = %s", e.Got, e.Expected)
}

// Unwrap makes errors.Is(err, errdefs.ErrFailedPrecondition) hold.
func (e *ChainError) Unwrap() error { return errdefs.ErrFailedPrecondition }

// VerifyChain checks that current names previous as its predecessor:
// current.previous_hash is set and equals previous.skill_hash exactly
// (spec §11.1). No cryptography is involved, and both fields are
// unauthenticated claims (spec §0.3): verify both signatures first. The
// comparison is exact because Rust writes a different skill_hash for the
// same root (spec §0.2); a chain links the string that was written.
func VerifyChain(current, previous *Signature) error {
	if current == nil || previous == nil {
		return fmt.Errorf("verify chain: nil signature: %w", errdefs.ErrInvalidArgument)
	}
	if current.PreviousHash == "" {
		return &ChainError{Kind: ChainNoPreviousHash}
	}
	if current.PreviousHash != previous.SkillHash {
		return &ChainError{Kind: ChainMismatch, Expected: previous.SkillHash, Got: current.PreviousHash}
	}
	return nil
}
