package skill

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/signerd/signerd/internal/errdefs"
)

func TestRootBuilderMatchesComputeRoot(t *testing.T) {
	files := map[string]string{}
	for i := range 1000 {
		files[fmt.Sprintf("dir%d/file-%d", i%7, i)] = fmt.Sprintf("sha256:%064x", i)
	}
	files["é"], files[".hidden"] = "sha256:"+strings.Repeat("a", 64), "sha256:"+strings.Repeat("b", 64)
	want, err := ComputeRoot(files)
	if err != nil {
		t.Fatal(err)
	}
	paths := make([]string, 0, len(files))
	for p := range files {
		paths = append(paths, p)
	}
	slices.Sort(paths)
	b := NewRootBuilder()
	for _, p := range paths {
		if err := b.Add(p, files[p]); err != nil {
			t.Fatal(err)
		}
	}
	if got, err := b.Root(); err != nil || got != want || b.Len() != len(files) {
		t.Fatalf("root %x, %v; want %x", got, err, want)
	}
}

func TestRootBuilderRefuses(t *testing.T) {
	ok := "sha256:" + strings.Repeat("a", 64)
	tests := []struct {
		name    string
		entries [][2]string
	}{
		{"out of order", [][2]string{{"b", ok}, {"a", ok}}},
		{"duplicate", [][2]string{{"a", ok}, {"a", ok}}},
		{"empty path", [][2]string{{"", ok}}},
		{"not UTF-8", [][2]string{{"\xff", ok}}},
		{"bad value", [][2]string{{"a", "sha256:XY"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := NewRootBuilder()
			var err error
			for _, e := range tt.entries {
				if err = b.Add(e[0], e[1]); err != nil {
					break
				}
			}
			if !errors.Is(err, errdefs.ErrInvalidArgument) {
				t.Fatalf("Add = %v, want ErrInvalidArgument", err)
			}
		})
	}
	if _, err := NewRootBuilder().Root(); !errors.Is(err, ErrEmptySkill) {
		t.Fatalf("empty root: %v", err)
	}
}
