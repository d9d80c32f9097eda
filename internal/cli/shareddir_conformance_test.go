//go:build conformance

package cli

import (
	"os"
	"path/filepath"
	"testing"
)

// skillSharedDir finds ../shared beside the checkout (SIGNERD_SHARED
// overrides it); only the conformance tests reach it, and fail without it.
func skillSharedDir(tb testing.TB) string {
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
