//go:build conformance

package cli

import (
	"testing"

	"github.com/signerd/signerd/internal/testutil/corpus"
)

// skillSharedDir: the third-party corpus, for the conformance tests only.
func skillSharedDir(tb testing.TB) string { return corpus.Dir(tb) }
