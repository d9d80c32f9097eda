package skill

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/signerd/signerd/internal/errdefs"
)

// canonicalizers runs each test against both implementations.
var canonicalizers = []struct {
	name string
	fn   func(context.Context, string) (Manifest, error)
}{
	{"parallel", Canonicalize},
	{"sequential", CanonicalizeSequential},
	{"parallel-1-worker", func(ctx context.Context, d string) (Manifest, error) { return canonicalizeParallel(ctx, d, 1) }},
	{"parallel-7-workers", func(ctx context.Context, d string) (Manifest, error) { return canonicalizeParallel(ctx, d, 7) }},
}

func TestCanonicalizeCanonEdge(t *testing.T) {
	var want struct {
		FileManifest map[string]string `json:"file_manifest"`
		SortedKeys   []string          `json:"sorted_key_order_bytewise"`
		RootHex      string            `json:"root_hash_hex"`
		SkillHash    string            `json:"skill_hash"`
	}
	if err := json.Unmarshal(readFixture(t, "vectors", "canon-edge.expected.json"), &want); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(extractTar(t, "vectors", "canon-edge.tar"), "canon-edge")
	// The tarball's three symlinks must have survived extraction, or the
	// test would not be testing that they are skipped.
	for _, l := range []string{"link.txt", "linkdir", "dangling"} {
		if st, err := os.Lstat(filepath.Join(dir, l)); err != nil || st.Mode()&os.ModeSymlink == 0 {
			t.Fatalf("%s is not a symlink after extraction: %v", l, err)
		}
	}
	for _, c := range canonicalizers {
		t.Run(c.name, func(t *testing.T) {
			m, err := c.fn(t.Context(), dir)
			if err != nil {
				t.Fatal(err)
			}
			if !maps.Equal(m.Files, want.FileManifest) {
				t.Errorf("manifest:\n got %v\nwant %v", m.Files, want.FileManifest)
			}
			if got := m.Paths(); !slices.Equal(got, want.SortedKeys) {
				t.Errorf("order:\n got %q\nwant %q", got, want.SortedKeys)
			}
			if m.RootHex() != want.RootHex || m.SkillHash() != want.SkillHash {
				t.Errorf("root %s, want %s", m.RootHex(), want.RootHex)
			}
			if len(m.Skipped) != 0 {
				t.Errorf("skipped %q, want none", m.Skipped)
			}
		})
	}
}

// TestCanonicalizeWorkedExample is spec §3.2.
func TestCanonicalizeWorkedExample(t *testing.T) {
	dir := copyFixtureDir(t, "vectors", "sample-skill-go-signed")
	m, err := Canonicalize(t.Context(), dir)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		"SKILL.md":             "sha256:0f0bc1b28b6fb4138caf35e1a149fda8c9fc57fb6e82a4e35dbe498a574e5061",
		"examples/config.json": "sha256:40abd24ca3433572b253782ee0cd7b2fa61f100cf32d4d4d69c0020b74da81a3",
		"scripts/run.py":       "sha256:752c0a35cadafd6f32ec8e851b23fe2506619f2564a8312fbd2901056c6d2524",
	}
	if !maps.Equal(m.Files, want) {
		t.Errorf("manifest %v", m.Files)
	}
	if got := m.RootHex(); got != "55f3de59110768e8e8aa1f9166716549b08c8b4dfcb9ab054a6e80f7c2957e2a" {
		t.Errorf("root %s", got)
	}
	r, err := ComputeRoot(m.Files)
	if err != nil || r != m.Root {
		t.Errorf("ComputeRoot = %x, %v; want %x", r, err, m.Root)
	}
	if form, ok := MatchSkillHash("sha256:2e77f5e8fb1f3aa9ec7c0ed6ff17d2d069503279d11c69bfa47a546c3caa04a6", m.Root); !ok || form != "sha256(root)" {
		t.Errorf("Rust skill_hash not recognised: %q %v", form, ok)
	}
}

func TestCanonicalizeErrors(t *testing.T) {
	empty := t.TempDir()
	onlySigs := writeTree(t, map[string]string{".schemapin.sig": "{}", "a/.schemapin.sig": "{}"})
	file := filepath.Join(writeTree(t, map[string]string{"f": "x"}), "f")
	tests := []struct {
		name string
		dir  string
		want error
	}{
		{"empty", empty, errdefs.ErrInvalidArgument},
		{"only signatures", onlySigs, ErrEmptySkill},
		{"missing", filepath.Join(empty, "nope"), errdefs.ErrNotFound},
		{"not a directory", file, errdefs.ErrInvalidArgument},
		{"empty path", "", errdefs.ErrInvalidArgument},
	}
	for _, tt := range tests {
		for _, c := range canonicalizers {
			t.Run(tt.name+"/"+c.name, func(t *testing.T) {
				if _, err := c.fn(t.Context(), tt.dir); !errors.Is(err, tt.want) {
					t.Errorf("err = %v, want %v", err, tt.want)
				}
			})
		}
	}
}

func TestCanonicalizeNonUTF8Name(t *testing.T) {
	for _, tc := range []struct{ name, path string }{
		{"file", "bad\xff.txt"},
		{"directory", "sub\xfe/ok.txt"},
	} {
		dir := writeTree(t, map[string]string{"SKILL.md": "x"})
		full := filepath.Join(dir, filepath.FromSlash(tc.path))
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte("y"), 0o644); err != nil {
			t.Skipf("file system refuses non-UTF-8 names: %v", err)
		}
		for _, c := range canonicalizers {
			t.Run(tc.name+"/"+c.name, func(t *testing.T) {
				_, err := c.fn(t.Context(), dir)
				if !errors.Is(err, errdefs.ErrInvalidArgument) {
					t.Fatalf("err = %v, want ErrInvalidArgument", err)
				}
				if !strings.Contains(err.Error(), "not valid UTF-8") || !strings.Contains(err.Error(), `\x`) {
					t.Errorf("error does not name the file clearly: %v", err)
				}
			})
		}
	}
	// A symlink with a non-UTF-8 name is skipped like any symlink.
	dir := writeTree(t, map[string]string{"SKILL.md": "x"})
	if err := os.Symlink("SKILL.md", filepath.Join(dir, "l\xff")); err != nil {
		t.Skip(err)
	}
	if _, err := Canonicalize(t.Context(), dir); err != nil {
		t.Errorf("symlink with non-UTF-8 name: %v", err)
	}
}

func TestCanonicalizeCancelled(t *testing.T) {
	dir := genTree(t, 200, 1<<10, 5, 1)
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	for _, c := range canonicalizers {
		if _, err := c.fn(ctx, dir); !errors.Is(err, context.Canceled) {
			t.Errorf("%s: err = %v, want context.Canceled", c.name, err)
		}
	}
}

func TestCanonicalizeSymlinkedRoot(t *testing.T) {
	dir := copyFixtureDir(t, "vectors", "sample-skill-go-signed")
	link := filepath.Join(t.TempDir(), "link")
	if err := os.Symlink(dir, link); err != nil {
		t.Skip(err)
	}
	a, err := Canonicalize(t.Context(), link)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := Canonicalize(t.Context(), dir)
	if a.Root != b.Root {
		t.Error("a symlinked skill folder must be followed (spec §3.3)")
	}
}

// TestCanonicalizeParallelEqualsSequential generates a tree of many files
// of varied sizes (empty, odd, larger than the read buffer) in nested
// directories with dotfiles and signature files mixed in.
func TestCanonicalizeParallelEqualsSequential(t *testing.T) {
	dir := genTree(t, 1200, 400<<10, 40, 42) // some files span several 128 KiB reads
	want, err := CanonicalizeSequential(t.Context(), dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(want.Files) < 1100 {
		t.Fatalf("generated tree has only %d files", len(want.Files))
	}
	for _, workers := range []int{1, 3, 64} {
		got, err := canonicalizeParallel(t.Context(), dir, workers)
		if err != nil {
			t.Fatal(err)
		}
		if got.Root != want.Root || !reflect.DeepEqual(got, want) {
			t.Errorf("workers=%d: root %s, sequential %s", workers, got.RootHex(), want.RootHex())
		}
	}
	r, err := ComputeRoot(want.Files)
	if err != nil || r != want.Root {
		t.Errorf("ComputeRoot disagrees: %x %v", r, err)
	}
}

func TestComputeRootRejects(t *testing.T) {
	good := "sha256:" + hex.EncodeToString(make([]byte, 32))
	for name, m := range map[string]map[string]string{
		"empty":       {},
		"uppercase":   {"a": "sha256:" + "AA" + good[9:]},
		"no prefix":   {"a": good[7:]},
		"short":       {"a": good[:70]},
		"empty path":  {"": good},
		"bad utf8":    {"\xff": good},
		"other algo":  {"a": "sha512:" + good[7:]},
		"trailing sp": {"a": good + " "},
	} {
		if _, err := ComputeRoot(m); !errors.Is(err, errdefs.ErrInvalidArgument) {
			t.Errorf("%s: err = %v", name, err)
		}
	}
}

// genTree writes n files under a temp dir, nested up to depth 4, with a few
// dotfiles and names that must be skipped. Every largeEvery-th file is up
// to maxSize bytes, a fifth are empty, the rest up to 4 KiB.
func genTree(tb testing.TB, n, maxSize, largeEvery int, seed uint64) string {
	tb.Helper()
	dir := tb.TempDir()
	rng := rand.New(rand.NewPCG(seed, seed))
	buf := make([]byte, maxSize)
	for i := range buf {
		buf[i] = byte(rng.Uint32())
	}
	for i := range n {
		p := ""
		for d := rng.IntN(5); d > 0; d-- {
			p = filepath.Join(p, fmt.Sprintf("d%d", rng.IntN(6)))
		}
		name := fmt.Sprintf("f%05d.bin", i)
		switch i % 97 {
		case 0:
			name = ".dot" + name
		case 1:
			name = SignatureFilename // skipped at any depth
		}
		size := 0
		switch {
		case i%largeEvery == 1 || largeEvery == 1:
			size = rng.IntN(maxSize + 1)
		case i%5 == 0:
			size = 0
		default:
			size = rng.IntN(min(4<<10, maxSize) + 1)
		}
		full := filepath.Join(dir, p, name)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			tb.Fatal(err)
		}
		if err := os.WriteFile(full, buf[:size], 0o644); err != nil {
			tb.Fatal(err)
		}
	}
	return dir
}
