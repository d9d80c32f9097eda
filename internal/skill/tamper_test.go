package skill

import (
	"errors"
	"slices"
	"testing"

	"github.com/signerd/signerd/internal/errdefs"
)

func TestTamperReport(t *testing.T) {
	r, err := CheckTampered(t.Context(), copyFixtureDir(t, "vectors", "sample-skill-go-signed-then-tampered"), nil)
	if err != nil {
		t.Fatal(err)
	}
	want := TamperReport{Modified: []string{"SKILL.md"}, Added: []string{"extra.txt"}, Removed: []string{"scripts/run.py"}}
	if !slices.Equal(r.Modified, want.Modified) || !slices.Equal(r.Added, want.Added) || !slices.Equal(r.Removed, want.Removed) || r.Clean() {
		t.Errorf("%+v", r)
	}
	clean := DetectTamperedFiles(map[string]string{"a": "1"}, map[string]string{"a": "1"})
	if !clean.Clean() || clean.Added == nil || clean.Modified == nil || clean.Removed == nil {
		t.Errorf("clean report must have empty non-nil lists: %#v", clean)
	}
	if _, err := CheckTampered(t.Context(), t.TempDir(), nil); !errors.Is(err, errdefs.ErrNotFound) {
		t.Errorf("no signature: %v", err)
	}
}
