package errdefs

import (
	"errors"
	"fmt"
	"testing"
)

func TestTrimKindAndSentence(t *testing.T) {
	tests := []struct {
		name string
		err  error
		kind error
		want string
	}{
		{"trailing kind", fmt.Errorf("flag --x is bad: %w", ErrInvalidArgument), ErrInvalidArgument, "flag --x is bad"},
		{"kind alone is kept", ErrNotFound, ErrNotFound, "not found"},
		{"kind in the middle is kept", fmt.Errorf("a: %w: b", ErrNotFound), ErrNotFound, "a: not found: b"},
		{"sentence", Sentence(ErrNotFound, "no token %q (no tokens present)", "t"), ErrNotFound, `no token "t" (no tokens present)`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if !errors.Is(tt.err, tt.kind) {
				t.Fatalf("%v is not %v", tt.err, tt.kind)
			}
			if got := TrimKind(tt.err.Error()); got != tt.want {
				t.Fatalf("TrimKind(%q) = %q, want %q", tt.err.Error(), got, tt.want)
			}
		})
	}
}
