package errdefs

import (
	"strconv"
	"unicode/utf8"
)

// MaxQuoted bounds how much of a caller-supplied string an error message or
// log line quotes. Callers choose org names, key names, signer_kid values,
// artifact names and domains; quoted whole, one megabyte field would make a
// megabyte log line on every refusal.
const MaxQuoted = 128

// Clip returns s if it is at most MaxQuoted bytes, else its first
// MaxQuoted bytes (cut at a rune boundary) followed by "…(N bytes)", N
// being len(s). Every caller-supplied string that goes into an error or a
// log line goes through Clip (or Quote), so the bound holds in one place.
func Clip(s string) string {
	if len(s) <= MaxQuoted {
		return s
	}
	cut := MaxQuoted
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "…(" + strconv.Itoa(len(s)) + " bytes)"
}

// Quote is Clip in Go quotes with escapes (%q), the form error messages
// use for names: control characters and invalid UTF-8 are escaped, so a
// caller cannot write terminal escape sequences into a log.
func Quote(s string) string {
	if len(s) <= MaxQuoted {
		return strconv.Quote(s)
	}
	c := Clip(s)
	head := c[:len(c)-len("…("+strconv.Itoa(len(s))+" bytes)")]
	return strconv.Quote(head) + "…(" + strconv.Itoa(len(s)) + " bytes)"
}

// MaxMessage bounds an error message as it leaves the daemon (a status
// message, a log line's error): messages quote caller strings only through
// Clip, so this bound is a second line that holds whatever a lower layer
// (a parser quoting a document's field) put in a message.
const MaxMessage = 2048

// ClipMessage bounds an error message to MaxMessage bytes, the same way
// Clip bounds a caller string.
func ClipMessage(s string) string {
	if len(s) <= MaxMessage {
		return s
	}
	cut := MaxMessage
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "…(" + strconv.Itoa(len(s)) + " bytes)"
}
