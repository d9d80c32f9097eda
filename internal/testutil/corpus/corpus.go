// Package corpus finds the third-party SchemaPin corpus (other people's
// signed skills, never copied into this repository) for the conformance
// tests that `make conformance` runs.
package corpus

import (
	"os"
	"path/filepath"
	"testing"
)

// Dir locates the shared material that sits beside the checkout as
// ../shared (shared/README.md); SIGNERD_SHARED overrides it. It fails the
// test when the corpus is missing: conformance tests never skip. Tests
// only read there; anything that could write works on a copy in
// t.TempDir().
func Dir(tb testing.TB) string {
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
