//go:build unix

package skill

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"syscall"
	"testing"
	"time"
)

// TestCanonicalizeFIFO: upstream Go blocks forever reading a FIFO (spec
// §3.3). Ours must finish, skip it and report it.
func TestCanonicalizeFIFO(t *testing.T) {
	dir := writeTree(t, map[string]string{"SKILL.md": "---\nname: x\n---\n", "sub/a.txt": "a"})
	for _, p := range []string{"pipe", "sub/pipe2", SkillFile + ".fifo"} {
		if err := syscall.Mkfifo(filepath.Join(dir, filepath.FromSlash(p)), 0o644); err != nil {
			t.Skipf("mkfifo: %v", err)
		}
	}
	ref := writeTree(t, map[string]string{"SKILL.md": "---\nname: x\n---\n", "sub/a.txt": "a"})
	want, err := CanonicalizeSequential(t.Context(), ref)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range canonicalizers {
		t.Run(c.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
			defer cancel()
			done := make(chan struct{})
			var m Manifest
			go func() {
				defer close(done)
				m, err = c.fn(ctx, dir)
			}()
			select {
			case <-done:
			case <-time.After(30 * time.Second):
				t.Fatal("canonicalization hangs on a FIFO")
			}
			if err != nil {
				t.Fatal(err)
			}
			if m.Root != want.Root {
				t.Errorf("root with FIFOs %s, without %s", m.RootHex(), want.RootHex())
			}
			if !slices.Equal(m.Skipped, []string{"SKILL.md.fifo", "pipe", "sub/pipe2"}) {
				t.Errorf("skipped %q", m.Skipped)
			}
		})
	}
}

// TestOpenRegularRefusesFIFO covers the race where a listed regular file
// is replaced by a FIFO before it is opened, and a FIFO named like the
// files we read directly (.schemapin.sig, SKILL.md).
func TestOpenRegularRefusesFIFO(t *testing.T) {
	dir := t.TempDir()
	fifo := filepath.Join(dir, "f")
	if err := syscall.Mkfifo(fifo, 0o644); err != nil {
		t.Skip(err)
	}
	done := make(chan error, 1)
	go func() {
		f, err := openRegular(fifo)
		if f != nil {
			f.Close()
		}
		done <- err
	}()
	select {
	case err := <-done:
		if err == nil {
			t.Error("a FIFO was accepted as a regular file")
		}
	case <-time.After(30 * time.Second):
		t.Fatal("openRegular blocks on a FIFO")
	}

	skillDir := t.TempDir()
	for _, n := range []string{SignatureFilename, SkillFile} {
		if err := syscall.Mkfifo(filepath.Join(skillDir, n), 0o644); err != nil {
			t.Skip(err)
		}
	}
	if err := os.WriteFile(filepath.Join(skillDir, "x"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		if _, err := LoadSignature(skillDir); err == nil {
			t.Error("LoadSignature accepted a FIFO")
		}
		if got := ParseSkillName(skillDir); got != filepath.Base(skillDir) {
			t.Errorf("ParseSkillName = %q", got)
		}
	}()
	select {
	case <-finished:
	case <-time.After(30 * time.Second):
		t.Fatal("reading a FIFO named .schemapin.sig or SKILL.md hangs")
	}
}

// TestCanonicalizeUnsigned: every entry of the folder that no signature
// covers is listed (symlinks of every kind, special files, nested
// .schemapin.sig files), none of them changes the root, and a name that
// is not UTF-8 fails only when it would go into the manifest.
func TestCanonicalizeUnsigned(t *testing.T) {
	files := map[string]string{"SKILL.md": "---\nname: x\n---\n", "scripts/run.py": "print(1)", SignatureFilename: "{}"}
	want, err := CanonicalizeSequential(t.Context(), writeTree(t, files))
	if err != nil {
		t.Fatal(err)
	}
	dir := writeTree(t, files)
	for link, target := range map[string]string{
		"scripts/helper.py": "/etc/passwd", // to a file outside
		"lib":               "/usr/lib",    // to a directory
		"gone":              "nowhere",     // dangling
		"scripts/loop":      "loop",        // to itself
		"n\xffme":           "SKILL.md",    // with a name that is not UTF-8
	} {
		if err := os.Symlink(target, filepath.Join(dir, filepath.FromSlash(link))); err != nil {
			t.Skipf("symlink: %v", err)
		}
	}
	if err := syscall.Mkfifo(filepath.Join(dir, "scripts", "pipe"), 0o644); err != nil {
		t.Skipf("mkfifo: %v", err)
	}
	if err := os.WriteFile(filepath.Join(dir, "scripts", SignatureFilename), []byte("anything"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(dir, "empty\xfe"), 0o755); err != nil {
		t.Skipf("file system refuses non-UTF-8 names: %v", err)
	}
	wantUnsigned := []string{"gone", "lib", "n\xffme", "scripts/.schemapin.sig", "scripts/helper.py", "scripts/loop", "scripts/pipe"}
	for _, c := range canonicalizers {
		t.Run(c.name, func(t *testing.T) {
			m, err := c.fn(t.Context(), dir)
			if err != nil {
				t.Fatalf("an empty directory with a non-UTF-8 name, symlinks and a FIFO: %v", err)
			}
			if m.Root != want.Root {
				t.Errorf("root %s, want %s: unsigned entries changed it", m.RootHex(), want.RootHex())
			}
			if !slices.Equal(m.Unsigned, wantUnsigned) {
				t.Errorf("unsigned %q, want %q", m.Unsigned, wantUnsigned)
			}
			if !slices.Equal(m.Skipped, []string{"scripts/pipe"}) {
				t.Errorf("skipped %q", m.Skipped)
			}
		})
	}
}
