//go:build !conformance

package skill

import "testing"

// addConformanceSeeds is a no-op outside `make conformance`: the
// third-party corpus is not in the repository (conformance_test.go).
func addConformanceSeeds(*testing.F, ...string) {}
