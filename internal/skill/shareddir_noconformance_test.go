//go:build !conformance

package skill

import "testing"

// sharedDir outside `make conformance`: the third-party SchemaPin corpus is
// never read by `make test`, which must pass in a bare clone.
func sharedDir(tb testing.TB) string {
	tb.Helper()
	tb.Fatalf("the third-party SchemaPin corpus is read only by the conformance tests (make conformance)")
	return ""
}
