package skill

import (
	"context"
	"fmt"
	"io/fs"
	"path/filepath"
	"testing"
)

// BenchmarkCanonicalize compares the parallel implementation with the
// sequential reference on generated trees (same root checked once per
// tree). Files are in the page cache after the first iteration, so this
// measures hashing and syscalls, not the disk.
func BenchmarkCanonicalize(b *testing.B) {
	trees := []struct {
		name           string
		n, size, every int
	}{
		{"4000-files-up-to-4KiB", 4000, 4 << 10, 1},
		{"300-files-up-to-2MiB", 300, 2 << 20, 1},
	}
	for _, tr := range trees {
		dir := genTree(b, tr.n, tr.size, tr.every, 7)
		var total int64
		filepath.WalkDir(dir, func(_ string, d fs.DirEntry, _ error) error {
			if d.Type().IsRegular() {
				if info, err := d.Info(); err == nil {
					total += info.Size()
				}
			}
			return nil
		})
		seq, err := CanonicalizeSequential(context.Background(), dir)
		if err != nil {
			b.Fatal(err)
		}
		par, err := Canonicalize(context.Background(), dir)
		if err != nil || par.Root != seq.Root {
			b.Fatalf("parallel root %s != sequential %s (%v)", par.RootHex(), seq.RootHex(), err)
		}
		for _, impl := range []struct {
			name string
			fn   func(context.Context, string) (Manifest, error)
		}{{"sequential", CanonicalizeSequential}, {"parallel", Canonicalize}} {
			b.Run(fmt.Sprintf("%s/%s", tr.name, impl.name), func(b *testing.B) {
				b.SetBytes(total)
				b.ReportAllocs()
				for b.Loop() {
					if _, err := impl.fn(context.Background(), dir); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}
