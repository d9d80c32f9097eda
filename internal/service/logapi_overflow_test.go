package service

import (
	"errors"
	"math"
	"testing"

	"github.com/signerd/signerd/internal/errdefs"
)

// TestLogInclusionProofLargestIndex: a leaf index of 2^64-1 is a leaf past
// the log, like any other, not an internal error (index+1 wrapped to 0).
func TestLogInclusionProofLargestIndex(t *testing.T) {
	f := logFixture(t, 3)
	for _, size := range []uint64{0, 1, math.MaxUint64} {
		_, err := f.svc.LogInclusionProof(f.ctx, math.MaxUint64, size)
		if !errors.Is(err, errdefs.ErrFailedPrecondition) || errors.Is(err, errdefs.ErrInternal) {
			t.Errorf("LogInclusionProof(2^64-1, %d) = %v, want FAILED_PRECONDITION", size, err)
		}
	}
}
