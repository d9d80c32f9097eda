package cli

import (
	"fmt"
	"reflect"
	"strings"
	"unicode/utf8"
)

// Text output shows strings that come from signature documents, skill
// folders and the daemon (canonicalization, signer_kid, skill_name,
// domain, key and org names, file names, error messages). A crafted one
// must not be able to talk to the terminal: "\x1b[32mOK" would paint a
// FAILED line green, "\r" or "\n" would write a line of its own, and a
// bidi override would reorder what is read. So every string argument of a
// text printer goes through escapeText; the format strings are ours. JSON
// output is escaped by the JSON encoder instead.

// escapeText returns s with every byte or rune a terminal could act on
// written as a Go-style escape: C0 controls (tab and newline included),
// DEL, C1 controls, Unicode bidi controls and line/paragraph separators,
// and bytes that are not UTF-8. Everything else, backslashes included, is
// kept, so ordinary text prints unchanged.
func escapeText(s string) string {
	if !needsEscape(s) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			fmt.Fprintf(&b, `\x%02x`, s[i])
		case r < 0x20 || r == 0x7f:
			fmt.Fprintf(&b, `\x%02x`, r)
		case isTerminalControl(r):
			fmt.Fprintf(&b, `\u%04x`, r)
		default:
			b.WriteString(s[i : i+size])
		}
		i += size
	}
	return b.String()
}

func needsEscape(s string) bool {
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		if (r == utf8.RuneError && size == 1) || r < 0x20 || r == 0x7f || isTerminalControl(r) {
			return true
		}
		i += size
	}
	return false
}

// isTerminalControl reports the non-ASCII runes that control rather than
// print: C1 (U+0080–U+009F, e.g. U+009B is a one-character CSI), the
// bidi marks, embeddings, overrides and isolates, and U+2028/U+2029.
func isTerminalControl(r rune) bool {
	switch {
	case r >= 0x80 && r <= 0x9f:
		return true
	case r == 0x061c, r == 0x200e, r == 0x200f:
		return true
	case r >= 0x202a && r <= 0x202e, r >= 0x2066 && r <= 0x2069:
		return true
	case r == 0x2028, r == 0x2029:
		return true
	}
	return false
}

// escapeArgs escapes the text of every argument that prints as text:
// strings and string kinds, errors, Stringers and string slices. Numbers
// and other values print as they are.
func escapeArgs(args []any) []any {
	out := make([]any, len(args))
	for i, a := range args {
		switch v := a.(type) {
		case nil:
			out[i] = a
		case string:
			out[i] = escapeText(v)
		case error:
			out[i] = escapeText(v.Error())
		case fmt.Stringer:
			out[i] = escapeText(v.String())
		case []string:
			e := make([]string, len(v))
			for j, s := range v {
				e[j] = escapeText(s)
			}
			out[i] = e
		default:
			if rv := reflect.ValueOf(a); rv.Kind() == reflect.String {
				out[i] = escapeText(rv.String())
			} else {
				out[i] = a
			}
		}
	}
	return out
}
