package cli

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/signerd/signerd/internal/skill"
)

// The tests below drive signctl in-process through Main, against copies
// of the SchemaPin vectors in testdata/schemapin (copied from
// shared/fixtures/schemapin/vectors) and, under `make conformance`
// (skill_conformance_test.go), of the third-party corpus in shared/.

const skillTestKeyFP = "sha256:45892e73606fae4e54ac9ef9cba48aef747ac4af2f712fd13abb7c721f5a44cd"

// skillFixture: "vectors/..." is the copy in testdata/schemapin; anything
// else is the third-party corpus in shared/fixtures/schemapin.
func skillFixture(tb testing.TB, rel ...string) string {
	tb.Helper()
	if len(rel) > 0 && (rel[0] == "vectors" || strings.HasPrefix(rel[0], "vectors/")) {
		return filepath.Join(append([]string{"testdata", "schemapin"}, rel...)...)
	}
	return filepath.Join(append([]string{skillSharedDir(tb), "fixtures", "schemapin"}, rel...)...)
}

// copySkillFixture copies a fixture folder into a temp dir, keeping its
// base name (the tool id falls back to it), and returns the copy.
func copySkillFixture(tb testing.TB, rel ...string) string {
	tb.Helper()
	src := skillFixture(tb, rel...)
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
		switch {
		case d.IsDir():
			return os.MkdirAll(target, 0o755)
		case d.Type()&fs.ModeSymlink != 0:
			l, err := os.Readlink(p)
			if err != nil {
				return err
			}
			return os.Symlink(l, target)
		case d.Type().IsRegular():
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			return os.WriteFile(target, b, 0o644)
		}
		return errors.New("unexpected file type in fixture: " + p)
	})
	if err != nil {
		tb.Fatal(err)
	}
	return dst
}

// extractSkillTar unpacks a fixture tarball with archive/tar, keeping its
// symlinks, into a temp dir it returns.
func extractSkillTar(tb testing.TB, rel ...string) string {
	tb.Helper()
	f, err := os.Open(skillFixture(tb, rel...))
	if err != nil {
		tb.Fatal(err)
	}
	defer f.Close()
	dst := tb.TempDir()
	tr := tar.NewReader(f)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return dst
		}
		if err != nil {
			tb.Fatal(err)
		}
		name := filepath.Clean(h.Name)
		if !filepath.IsLocal(name) {
			tb.Fatalf("tar entry escapes: %q", h.Name)
		}
		target := filepath.Join(dst, name)
		if err := os.MkdirAll(filepath.Dir(target), 0o755); err != nil {
			tb.Fatal(err)
		}
		switch h.Typeflag {
		case tar.TypeDir:
			err = os.MkdirAll(target, 0o755)
		case tar.TypeReg:
			var b []byte
			if b, err = io.ReadAll(tr); err == nil {
				err = os.WriteFile(target, b, 0o644)
			}
		case tar.TypeSymlink:
			err = os.Symlink(h.Linkname, target)
		default:
			tb.Fatalf("unexpected tar entry type %c for %q", h.Typeflag, h.Name)
		}
		if err != nil {
			tb.Fatal(err)
		}
	}
}

type skillCLIResult struct {
	code           int
	stdout, stderr string
}

// decode parses stdout as one JSON object.
func (r skillCLIResult) decode(tb testing.TB) map[string]any {
	tb.Helper()
	var m map[string]any
	if err := json.Unmarshal([]byte(r.stdout), &m); err != nil {
		tb.Fatalf("stdout is not one JSON object: %v\nstdout: %s\nstderr: %s", err, r.stdout, r.stderr)
	}
	return m
}

var skillRegistered = sync.OnceValue(func() bool {
	c, _, err := NewRootCommand(io.Discard, io.Discard).Find([]string{"skill", "verify"})
	return err == nil && c.Name() == "verify"
})

// runSignctl runs signctl in-process through Main.
func runSignctl(tb testing.TB, args ...string) skillCLIResult {
	tb.Helper()
	if !skillRegistered() {
		tb.Fatal("signctl has no `skill verify`: NewRootCommand (root.go) must build the skill parent with newSkillCommand(g)")
	}
	var out, errb bytes.Buffer
	code := Main(context.Background(), args, &out, &errb)
	return skillCLIResult{code: code, stdout: out.String(), stderr: errb.String()}
}

func wantSkillExit(tb testing.TB, r skillCLIResult, code int) {
	tb.Helper()
	if r.code != code {
		tb.Fatalf("exit %d, want %d\nstdout: %s\nstderr: %s", r.code, code, r.stdout, r.stderr)
	}
}

func wantSkillField(tb testing.TB, m map[string]any, key string, want any) {
	tb.Helper()
	if got := m[key]; got != want {
		tb.Errorf("%s = %#v, want %#v (in %v)", key, got, want, m)
	}
}

func skillWarnings(m map[string]any) []string {
	var out []string
	ws, _ := m["warnings"].([]any)
	for _, w := range ws {
		s, _ := w.(string)
		out = append(out, s)
	}
	return out
}

func skillSigDomain(tb testing.TB, dir string) string {
	tb.Helper()
	sig, err := skill.LoadSignature(dir)
	if err != nil {
		tb.Fatal(err)
	}
	return sig.Domain
}

func TestSkillCanonicalize(t *testing.T) {
	var want struct {
		FileManifest map[string]string `json:"file_manifest"`
		Root         string            `json:"root_hash_hex"`
		SkillHash    string            `json:"skill_hash"`
		Order        []string          `json:"sorted_key_order_bytewise"`
	}
	data, err := os.ReadFile(skillFixture(t, "vectors", "canon-edge.expected.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(data, &want); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(extractSkillTar(t, "vectors", "canon-edge.tar"), "canon-edge")
	if fi, err := os.Lstat(filepath.Join(dir, "link.txt")); err != nil || fi.Mode()&fs.ModeSymlink == 0 {
		t.Fatalf("the extracted fixture lost its symlinks (%v)", err)
	}

	r := runSignctl(t, "skill", "canonicalize", dir, "-o", "json")
	wantSkillExit(t, r, ExitOK)
	var got skillCanonicalOutput
	if err := json.Unmarshal([]byte(r.stdout), &got); err != nil {
		t.Fatal(err)
	}
	if got.Root != want.Root || got.SkillHash != want.SkillHash {
		t.Errorf("root %s / %s, want %s / %s", got.Root, got.SkillHash, want.Root, want.SkillHash)
	}
	if got.FileCount != len(want.FileManifest) || len(got.FileManifest) != len(want.FileManifest) {
		t.Errorf("%d files, want %d", got.FileCount, len(want.FileManifest))
	}
	for p, h := range want.FileManifest {
		if got.FileManifest[p] != h {
			t.Errorf("manifest[%q] = %q, want %q", p, got.FileManifest[p], h)
		}
	}

	r = runSignctl(t, "skill", "canonicalize", dir)
	wantSkillExit(t, r, ExitOK)
	lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
	if !strings.Contains(lines[0], want.Root) {
		t.Errorf("first line %q does not give the root", lines[0])
	}
	// The manifest lines come in byte order of their paths.
	var paths []string
	for _, l := range lines {
		if h, p, ok := strings.Cut(l, "  "); ok && strings.HasPrefix(h, "sha256:") {
			paths = append(paths, p)
		}
	}
	if !slices.Equal(paths, want.Order) {
		t.Errorf("text manifest order %q, want %q", paths, want.Order)
	}
}

func TestSkillCanonicalizeBadInput(t *testing.T) {
	wantSkillExit(t, runSignctl(t, "skill", "canonicalize", t.TempDir()), ExitUsage) // no signable file
	wantSkillExit(t, runSignctl(t, "skill", "canonicalize", filepath.Join(t.TempDir(), "missing")), ExitUsage)
	wantSkillExit(t, runSignctl(t, "skill", "canonicalize"), ExitUsage)
}

// skillTamperedCase is one row of TestSkillTampered (and of its
// conformance twin over the third-party corpus).
type skillTamperedCase struct {
	name                     string
	fixture                  []string
	code                     int
	modified, added, removed []string
}

func TestSkillTampered(t *testing.T) {
	runSkillTampered(t, []skillTamperedCase{
		{"tampered", []string{"vectors", "sample-skill-go-signed-then-tampered"}, ExitVerifyFail,
			[]string{"SKILL.md"}, []string{"extra.txt"}, []string{"scripts/run.py"}},
		{"clean", []string{"vectors", "sample-skill-go-signed"}, ExitOK, nil, nil, nil},
	})
	t.Run("no signature", func(t *testing.T) {
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, "SKILL.md"), []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
		r := runSignctl(t, "skill", "tampered", dir)
		wantSkillExit(t, r, ExitUsage)
		if !strings.Contains(r.stderr, "--signature") {
			t.Errorf("the error does not say what to do: %s", r.stderr)
		}
	})
}

func runSkillTampered(t *testing.T, cases []skillTamperedCase) {
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := copySkillFixture(t, tc.fixture...)
			r := runSignctl(t, "skill", "tampered", dir, "-o", "json")
			wantSkillExit(t, r, tc.code)
			var got skillTamperedOutput
			if err := json.Unmarshal([]byte(r.stdout), &got); err != nil {
				t.Fatal(err)
			}
			if got.Clean != (tc.code == ExitOK) ||
				!slices.Equal(got.Modified, skillOrEmpty(tc.modified)) || !slices.Equal(got.Added, skillOrEmpty(tc.added)) ||
				!slices.Equal(got.Removed, skillOrEmpty(tc.removed)) {
				t.Errorf("report %+v, want modified %v added %v removed %v", got, tc.modified, tc.added, tc.removed)
			}
			r = runSignctl(t, "skill", "tampered", dir)
			wantSkillExit(t, r, tc.code)
			for _, p := range tc.modified {
				if !strings.Contains(r.stdout, "modified  "+p) {
					t.Errorf("text report lacks modified %s:\n%s", p, r.stdout)
				}
			}
		})
	}
}

func skillOrEmpty(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

func TestSkillChain(t *testing.T) {
	v14 := copySkillFixture(t, "vectors", "sample-skill-go-v14-signed")
	base := copySkillFixture(t, "vectors", "sample-skill-go-signed")
	rust := copySkillFixture(t, "vectors", "sample-skill-rust-emulated-signed")
	sig := func(dir string) string { return filepath.Join(dir, ".schemapin.sig") }

	r := runSignctl(t, "skill", "chain", sig(v14), sig(base), "-o", "json")
	wantSkillExit(t, r, ExitOK)
	m := r.decode(t)
	wantSkillField(t, m, "linked", true)

	// Folders stand for their .schemapin.sig.
	wantSkillExit(t, runSignctl(t, "skill", "chain", v14, base), ExitOK)

	r = runSignctl(t, "skill", "chain", sig(base), sig(v14), "-o", "json")
	wantSkillExit(t, r, ExitVerifyFail)
	wantSkillField(t, r.decode(t), "error_code", "no_previous_hash")

	// Rust writes skill_hash = sha256(root): the same content, a different
	// string, so the chain does not link (spec §11.1).
	r = runSignctl(t, "skill", "chain", sig(v14), sig(rust), "-o", "json")
	wantSkillExit(t, r, ExitVerifyFail)
	m = r.decode(t)
	wantSkillField(t, m, "error_code", "mismatch")
	wantSkillField(t, m, "linked", false)

	r = runSignctl(t, "skill", "chain", sig(v14), sig(rust))
	wantSkillExit(t, r, ExitVerifyFail)
	if !strings.Contains(r.stderr, "previous_hash mismatch") {
		t.Errorf("text failure: %s", r.stderr)
	}

	bad := filepath.Join(t.TempDir(), "bad.sig")
	if err := os.WriteFile(bad, []byte("{not json"), 0o644); err != nil {
		t.Fatal(err)
	}
	wantSkillExit(t, runSignctl(t, "skill", "chain", sig(v14), bad), ExitUsage)
	wantSkillExit(t, runSignctl(t, "skill", "chain", sig(v14), filepath.Join(t.TempDir(), "missing.sig")), ExitUsage)
	wantSkillExit(t, runSignctl(t, "skill", "chain", sig(v14)), ExitUsage)
}

func TestSkillHelp(t *testing.T) {
	for _, sub := range []string{"verify", "canonicalize", "tampered", "chain"} {
		r := runSignctl(t, "skill", sub, "--help")
		wantSkillExit(t, r, ExitOK)
		if !strings.Contains(r.stdout, "Examples:") || !strings.Contains(r.stdout, "Exit") {
			t.Errorf("skill %s --help lacks examples or exit codes:\n%s", sub, r.stdout)
		}
	}
	// The test hooks are not flags.
	r := runSignctl(t, "skill", "verify", "--help")
	for _, hidden := range []string{"root-ca", "test", "resolver"} {
		if strings.Contains(strings.ToLower(r.stdout), "--"+hidden) {
			t.Errorf("--help mentions --%s", hidden)
		}
	}
}
