package errdefs

import (
	"strings"
	"testing"
)

func TestClip(t *testing.T) {
	tests := []struct {
		name, in, clip, quote string
	}{
		{"short", "acme", "acme", `"acme"`},
		{"at the bound", strings.Repeat("a", MaxQuoted), strings.Repeat("a", MaxQuoted), `"` + strings.Repeat("a", MaxQuoted) + `"`},
		{"long", strings.Repeat("a", 1<<20), strings.Repeat("a", MaxQuoted) + "…(1048576 bytes)", `"` + strings.Repeat("a", MaxQuoted) + `"…(1048576 bytes)`},
		{"rune boundary", "a" + strings.Repeat("é", 100), "a" + strings.Repeat("é", 63) + "…(201 bytes)", `"a` + strings.Repeat("é", 63) + `"…(201 bytes)`},
		{"escapes quoted", "\x1b[31m", "\x1b[31m", `"\x1b[31m"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Clip(tt.in); got != tt.clip {
				t.Errorf("Clip = %q, want %q", got, tt.clip)
			}
			if got := Quote(tt.in); got != tt.quote {
				t.Errorf("Quote = %s, want %s", got, tt.quote)
			}
		})
	}
	if got := ClipMessage(strings.Repeat("x", 1<<20)); len(got) > MaxMessage+32 || !strings.HasSuffix(got, "(1048576 bytes)") {
		t.Errorf("ClipMessage kept %d bytes", len(got))
	}
}
