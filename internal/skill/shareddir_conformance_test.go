//go:build conformance

package skill

import (
	"testing"

	"github.com/signerd/signerd/internal/testutil/corpus"
)

// sharedDir: the third-party corpus, for the conformance tests only.
func sharedDir(tb testing.TB) string { return corpus.Dir(tb) }
