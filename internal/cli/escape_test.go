package cli

import (
	"bytes"
	"errors"
	"testing"
)

func TestEscapeText(t *testing.T) {
	tests := []struct{ in, want string }{
		{"plain text, ünïcödé, 😀, back\\slash", "plain text, ünïcödé, 😀, back\\slash"},
		{"\x1b[32mOK\x1b[0m", `\x1b[32mOK\x1b[0m`},
		{"line\nOK: forged\r", `line\x0aOK: forged\x0d`},
		{"tab\there", `tab\x09here`},
		{"nul\x00 bel\x07 del\x7f", `nul\x00 bel\x07 del\x7f`},
		{"c1 csi \u009b31m", `c1 csi \u009b31m`},
		{"bidi \u202egnp.exe\u202c \u2066x\u2069 \u200f", `bidi \u202egnp.exe\u202c \u2066x\u2069 \u200f`},
		{"separators \u2028\u2029", `separators \u2028\u2029`},
		{"bad utf-8 \xff\xc3(", `bad utf-8 \xff\xc3(`},
	}
	for _, tt := range tests {
		if got := escapeText(tt.in); got != tt.want {
			t.Errorf("escapeText(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

type named string

type stringer struct{}

func (stringer) String() string { return "\x1b]0;title\x07" }

// TestPrintfEscapesArguments: every kind of text argument is escaped; the
// format, numbers and the newline the format asks for are not.
func TestPrintfEscapesArguments(t *testing.T) {
	var b bytes.Buffer
	printf(&b, "%s|%v|%s|%s|%v|%d\n", "\x1b[31m", errors.New("e\x1b"), named("n\r"), stringer{}, []string{"\x9b"}, 7)
	want := `\x1b[31m|e\x1b|n\x0d|\x1b]0;title\x07|[\x9b]|7` + "\n"
	if b.String() != want {
		t.Fatalf("printf wrote %q, want %q", b.String(), want)
	}
}
