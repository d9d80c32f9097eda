package skill

import (
	"errors"
	"strings"
	"testing"

	"github.com/signerd/signerd/internal/errdefs"
)

func TestVerifyChain(t *testing.T) {
	prev, _ := ParseSignature(readFixture(t, "vectors", "sample-skill-go-signed", SignatureFilename))
	cur, _ := ParseSignature(readFixture(t, "vectors", "sample-skill-go-v14-signed", SignatureFilename))
	if err := VerifyChain(cur, prev); err != nil {
		t.Errorf("v1.4 vector's previous_hash should link to the v1.3 vector: %v", err)
	}
	rust, _ := ParseSignature(readFixture(t, "vectors", "sample-skill-rust-emulated-signed", SignatureFilename))
	err := VerifyChain(cur, rust)
	var ce *ChainError
	if !errors.As(err, &ce) || ce.Kind != ChainMismatch || ce.Expected != rust.SkillHash || ce.Got != cur.PreviousHash || !errors.Is(err, errdefs.ErrFailedPrecondition) {
		t.Errorf("Rust skill_hash must not link (exact string): %v", err)
	}
	if !strings.HasPrefix(err.Error(), "previous_hash mismatch: current.previous_hash = sha256:55f3") {
		t.Errorf("message %q", err)
	}
	err = VerifyChain(prev, prev)
	if !errors.As(err, &ce) || ce.Kind != ChainNoPreviousHash || err.Error() != "current signature has no previous_hash field" {
		t.Errorf("no previous_hash: %v", err)
	}
	if err := VerifyChain(nil, prev); !errors.Is(err, errdefs.ErrInvalidArgument) {
		t.Error("nil")
	}
}
