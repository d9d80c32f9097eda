package skill

import (
	"archive/tar"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// fixture returns the path of a SchemaPin fixture: "vectors/..." is the
// copy in testdata/schemapin (made for this project), anything else is
// the third-party corpus under shared/fixtures/schemapin, which only the
// conformance tests read.
func fixture(tb testing.TB, rel ...string) string {
	tb.Helper()
	if len(rel) > 0 && (rel[0] == "vectors" || strings.HasPrefix(rel[0], "vectors/")) {
		return filepath.Join(append([]string{"testdata", "schemapin"}, rel...)...)
	}
	return filepath.Join(append([]string{sharedDir(tb), "fixtures", "schemapin"}, rel...)...)
}

func readFixture(tb testing.TB, rel ...string) []byte {
	tb.Helper()
	b, err := os.ReadFile(fixture(tb, rel...))
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

// copyFixtureDir copies a fixture folder into a fresh temp dir (writable
// modes: the shared tree is read-only) and returns the copy's path, which
// keeps the folder's base name (ParseSkillName falls back to it).
func copyFixtureDir(tb testing.TB, rel ...string) string {
	tb.Helper()
	src := fixture(tb, rel...)
	dst := filepath.Join(tb.TempDir(), filepath.Base(src))
	err := filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		r, err := filepath.Rel(src, p)
		if err != nil {
			return err
		}
		target := filepath.Join(dst, r)
		switch t := d.Type(); {
		case t.IsDir():
			return os.MkdirAll(target, 0o755)
		case t&fs.ModeSymlink != 0:
			l, err := os.Readlink(p)
			if err != nil {
				return err
			}
			return os.Symlink(l, target)
		case t.IsRegular():
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			return os.WriteFile(target, b, 0o644)
		default:
			return errors.New("unexpected file type in fixture: " + p)
		}
	})
	if err != nil {
		tb.Fatal(err)
	}
	return dst
}

// extractTar unpacks a fixture tarball into a temp dir with archive/tar,
// keeping its symlinks, and returns the temp dir.
func extractTar(tb testing.TB, rel ...string) string {
	tb.Helper()
	f, err := os.Open(fixture(tb, rel...))
	if err != nil {
		tb.Fatal(err)
	}
	defer f.Close()
	dst := tb.TempDir()
	tr := tar.NewReader(f)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			tb.Fatal(err)
		}
		name := filepath.Clean(h.Name)
		if filepath.IsAbs(name) || name == ".." || strings.HasPrefix(name, "../") {
			tb.Fatalf("tar entry escapes: %q", h.Name)
		}
		target := filepath.Join(dst, name)
		switch h.Typeflag {
		case tar.TypeDir:
			err = os.MkdirAll(target, 0o755)
		case tar.TypeReg:
			if err = os.MkdirAll(filepath.Dir(target), 0o755); err == nil {
				var out *os.File
				if out, err = os.OpenFile(target, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o644); err == nil {
					_, err = io.Copy(out, tr)
					if cerr := out.Close(); err == nil {
						err = cerr
					}
				}
			}
		case tar.TypeSymlink:
			if err = os.MkdirAll(filepath.Dir(target), 0o755); err == nil {
				err = os.Symlink(h.Linkname, target)
			}
		default:
			tb.Fatalf("unexpected tar entry type %c for %q", h.Typeflag, h.Name)
		}
		if err != nil {
			tb.Fatal(err)
		}
	}
	return dst
}

// writeTree creates files (path → content) under a new temp dir.
func writeTree(tb testing.TB, files map[string]string) string {
	tb.Helper()
	dir := tb.TempDir()
	for p, c := range files {
		full := filepath.Join(dir, filepath.FromSlash(p))
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			tb.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(c), 0o644); err != nil {
			tb.Fatal(err)
		}
	}
	return dir
}
