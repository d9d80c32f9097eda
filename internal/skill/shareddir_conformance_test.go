//go:build conformance

package skill

import (
	"os"
	"path/filepath"
	"testing"
)

// sharedDir locates the shared material that sits beside the checkout as
// ../shared (shared/README.md). SIGNERD_SHARED overrides it. Only the
// conformance tests reach it, and they fail when it is missing. Tests only
// read there; anything that could write works on a copy in t.TempDir().
func sharedDir(tb testing.TB) string {
	tb.Helper()
	if d := os.Getenv("SIGNERD_SHARED"); d != "" {
		if _, err := os.Stat(filepath.Join(d, "fixtures", "schemapin")); err != nil {
			tb.Fatalf("SIGNERD_SHARED=%s holds no fixtures/schemapin: %v", d, err)
		}
		return d
	}
	wd, err := os.Getwd()
	if err != nil {
		tb.Fatal(err)
	}
	for d := wd; ; d = filepath.Dir(d) {
		if _, err := os.Stat(filepath.Join(d, "go.mod")); err == nil {
			s := filepath.Join(d, "..", "shared")
			if _, err := os.Stat(filepath.Join(s, "fixtures", "schemapin")); err != nil {
				tb.Fatalf("shared fixtures not found at %s (set SIGNERD_SHARED): %v", s, err)
			}
			return s
		}
		if filepath.Dir(d) == d {
			tb.Fatalf("go.mod not found above %s", wd)
		}
	}
}
