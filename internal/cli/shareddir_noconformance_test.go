//go:build !conformance

package cli

import "testing"

// skillSharedDir outside `make conformance`: the third-party SchemaPin corpus is
// never read by `make test`, which must pass in a bare clone.
func skillSharedDir(tb testing.TB) string {
	tb.Helper()
	tb.Fatalf("the third-party SchemaPin corpus is read only by the conformance tests (make conformance)")
	return ""
}
