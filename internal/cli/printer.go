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

// printf writes text output.
func printf(w io.Writer, format string, args ...any) {
	fmt.Fprintf(w, format, args...)
}
