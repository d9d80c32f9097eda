package errdefs

import (
	"errors"
	"fmt"
	"io/fs"
	"strings"
	"syscall"
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
			if got := TrimKindOf(tt.err); got != tt.want {
				t.Fatalf("TrimKindOf(%q) = %q, want %q", tt.err.Error(), got, tt.want)
			}
		})
	}
}

// TestTrimKindOfKeepsTheCause: EACCES reads "permission denied", the text of
// ErrPermissionDenied; under another kind it is the cause, and signerd's
// last line must keep it (a start on a database directory it may not write:
// "open journal …: unavailable\nopen …: permission denied").
func TestTrimKindOfKeepsTheCause(t *testing.T) {
	var oserr error = &fs.PathError{Op: "open", Path: "/var/lib/signerd/signerd.db.journal", Err: syscall.EACCES}
	err := fmt.Errorf("open journal %s: %w", "/var/lib/signerd/signerd.db.journal", errors.Join(ErrUnavailable, oserr))
	if got := TrimKindOf(err); !strings.HasSuffix(got, "permission denied") {
		t.Fatalf("TrimKindOf(%q) = %q: the cause is gone", err.Error(), got)
	}
	if got, want := TrimKindOf(fmt.Errorf("flag --x is bad: %w", ErrInvalidArgument)), "flag --x is bad"; got != want {
		t.Fatalf("TrimKindOf = %q, want %q", got, want)
	}
	if got, want := TrimKindOf(fmt.Errorf("may not: %w", ErrPermissionDenied)), "may not"; got != want {
		t.Fatalf("TrimKindOf = %q, want %q", got, want)
	}
}
