package cli

import (
	"encoding/json"
	"fmt"
	"io"
)

// printJSON writes v as indented JSON followed by a newline.
func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	return enc.Encode(v)
}

// printf writes text output. Every text printer of signctl uses it (or
// writeRaw for whole documents): its arguments are escaped so that strings
// from documents and the daemon cannot control the terminal (escape.go).
func printf(w io.Writer, format string, args ...any) {
	fmt.Fprintf(w, format, escapeArgs(args)...)
}

// writeRaw writes a document that signctl prints verbatim (a PEM public
// key, a JSON document) for the user to redirect into a file.
func writeRaw(w io.Writer, doc string) {
	io.WriteString(w, doc)
}

// count writes n with the noun in the right number: "1 checkpoint",
// "2 checkpoints" (the plural is noun+"s"; every noun we count has one).
func count[N ~int | ~int64 | ~uint64](n N, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return fmt.Sprintf("%d %ss", n, noun)
}
