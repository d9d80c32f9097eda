package pkgsig

import (
	"slices"
	"testing"
)

func TestSidecarPaths(t *testing.T) {
	for _, tc := range []struct {
		path string
		want []string
	}{
		{"libworkflow.so", []string{"libworkflow.so.sig"}},
		{"dir/pkg", []string{"dir/pkg.sig", "dir/pkg..sig"}},
		{"dir.d/pkg", []string{"dir.d/pkg.sig", "dir.d/pkg..sig"}},
		{".hidden", []string{".hidden.sig", ".hidden..sig"}},
		{"a.b.c", []string{"a.b.c.sig"}},
		{"pkg.", []string{"pkg..sig"}}, // Rust's extension is "": the same name
	} {
		if got := SidecarPaths(tc.path); !slices.Equal(got, tc.want) {
			t.Errorf("SidecarPaths(%q) = %q, want %q", tc.path, got, tc.want)
		}
	}
}
