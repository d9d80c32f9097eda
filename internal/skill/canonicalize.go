package skill

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"unicode/utf8"

	"github.com/signerd/signerd/internal/errdefs"
)

// SignatureFilename is the name of the signature document inside a skill
// folder. Files with this name are excluded from canonicalization at any
// depth (spec §3.1); a directory with this name is walked.
const SignatureFilename = ".schemapin.sig"

// readBufferSize is the per-worker read buffer. Files are streamed through
// it, never read whole: a skill may carry large binaries.
const readBufferSize = 128 << 10

// ErrEmptySkill is returned (wrapped) when a folder has no signable file.
// Every SDK refuses to sign or verify an empty manifest (spec §3.3).
var ErrEmptySkill = fmt.Errorf("skill directory is empty or contains no signable files: %w", errdefs.ErrInvalidArgument)

// Manifest is the result of canonicalizing a skill folder (spec §3).
type Manifest struct {
	// Root is SHA-256 over the concatenated lowercase hex per-file digests in
	// byte order of their paths. It is the only thing a signature covers.
	Root [32]byte
	// Files maps each '/'-separated relative path to "sha256:<hex>", where
	// the digest is SHA-256(path bytes || file bytes): upstream's
	// file_manifest.
	Files map[string]string
	// Skipped lists, in byte order, the relative paths of entries that are
	// neither regular files, directories nor symlinks (FIFOs, sockets,
	// devices). They are never opened: upstream Go would block on a FIFO
	// forever, Rust skips them (spec §3.3). Callers may show them.
	Skipped []string
	// Unsigned lists, in byte order, every entry of the folder that the
	// signature does not cover, other than the folder's own
	// .schemapin.sig: symlinks (to files, to directories, dangling), files
	// named .schemapin.sig below the top level, which every SDK leaves out
	// (spec §3.1), and the Skipped entries, which Rust and signerd skip
	// (§3.3). They can be added to a signed folder without breaking its
	// signature: a symlink scripts/run.py pointing anywhere verifies.
	// Verification warns of them (WarningUnsignedEntries).
	Unsigned []string
}

// RootHex is the lowercase hex of Root.
func (m Manifest) RootHex() string { return hex.EncodeToString(m.Root[:]) }

// SkillHash is the skill_hash value Go, Python and JS write:
// "sha256:" + hex(root) (spec §5.1, DESIGN.md).
func (m Manifest) SkillHash() string { return FingerprintPrefix + m.RootHex() }

// Paths returns the manifest's paths in canonical (byte) order.
func (m Manifest) Paths() []string {
	keys := make([]string, 0, len(m.Files))
	for k := range m.Files {
		keys = append(keys, k)
	}
	slices.Sort(keys) // Go string order is byte order, as spec §3.1 requires.
	return keys
}

// fileDigest is one hashed file.
type fileDigest struct {
	rel string
	sum [32]byte
}

// Canonicalize computes the root hash and file manifest of the skill folder
// dir exactly as spec §3: the folder is resolved (Abs + EvalSymlinks),
// symlinks are skipped by lstat type, files named .schemapin.sig are
// skipped at any depth, dotfiles and empty files are included, and only
// regular files and directories are walked. Files are hashed in parallel by
// a pool of GOMAXPROCS workers; the result is identical to
// CanonicalizeSequential because the root depends only on the sorted set of
// (path, digest) pairs, never on the order in which they were produced.
//
// A name that is not valid UTF-8 is an error wrapping
// errdefs.ErrInvalidArgument: the SDKs disagree on such names (raw bytes,
// exception, lossy U+FFFD; spec §3.3), so no root we could compute would be
// verifiable everywhere.
func Canonicalize(ctx context.Context, dir string) (Manifest, error) {
	return canonicalizeParallel(ctx, dir, runtime.GOMAXPROCS(0))
}

// CanonicalizeSequential is the reference implementation of spec §3.1: one
// filepath.WalkDir, hashing each file as it is met. It exists for tests and
// benchmarks, which check that Canonicalize produces the same Manifest.
func CanonicalizeSequential(ctx context.Context, dir string) (Manifest, error) {
	base, err := resolveSkillDir(dir)
	if err != nil {
		return Manifest{}, err
	}
	var (
		digests           []fileDigest
		skipped, unsigned []string
		buf               = make([]byte, readBufferSize)
	)
	err = filepath.WalkDir(base, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if path == base {
			return nil
		}
		if cerr := ctx.Err(); cerr != nil {
			return cerr
		}
		relOS, err := filepath.Rel(base, path)
		if err != nil {
			return err
		}
		rel := filepath.ToSlash(relOS)
		t := d.Type()
		switch {
		case t&fs.ModeSymlink != 0:
			if rel != SignatureFilename { // the folder's own, read through its link
				unsigned = append(unsigned, rel)
			}
		case t.IsDir():
			return nil
		case d.Name() == SignatureFilename:
			if rel != SignatureFilename {
				unsigned = append(unsigned, rel)
			}
		case t.IsRegular():
			if !utf8.ValidString(rel) {
				return nonUTF8Error(rel)
			}
			sum, err := hashFile(ctx, path, rel, buf)
			if err != nil {
				return err
			}
			digests = append(digests, fileDigest{rel: rel, sum: sum})
		default:
			skipped = append(skipped, rel)
		}
		return nil
	})
	if err != nil {
		return Manifest{}, canonError(dir, err)
	}
	return finish(digests, skipped, unsigned)
}

// canonicalizeParallel walks the tree in one goroutine (listing directories
// is cheap) and feeds regular files to `workers` hashing goroutines. The
// first error cancels the walk and every worker.
func canonicalizeParallel(ctx context.Context, dir string, workers int) (Manifest, error) {
	base, err := resolveSkillDir(dir)
	if err != nil {
		return Manifest{}, err
	}
	if workers < 1 {
		workers = 1
	}
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)

	type job struct{ abs, rel string }
	jobs := make(chan job, 4*workers)
	results := make([][]fileDigest, workers)
	var wg sync.WaitGroup
	for i := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			buf := make([]byte, readBufferSize)
			for j := range jobs {
				if ctx.Err() != nil {
					continue // drain so the walker never blocks
				}
				sum, err := hashFile(ctx, j.abs, j.rel, buf)
				if err != nil {
					cancel(err)
					continue
				}
				results[i] = append(results[i], fileDigest{rel: j.rel, sum: sum})
			}
		}()
	}

	var skipped, unsigned []string
	var walk func(abs, rel string) error
	walk = func(abs, rel string) error {
		entries, err := readDirNoFollow(abs)
		if err != nil {
			return err
		}
		for _, e := range entries {
			if err := ctx.Err(); err != nil {
				return context.Cause(ctx)
			}
			name := e.Name()
			t := e.Type()
			childRel := name
			if rel != "" {
				childRel = rel + "/" + name
			}
			childAbs := filepath.Join(abs, name)
			switch {
			case t&fs.ModeSymlink != 0:
				if childRel != SignatureFilename { // the folder's own, read through its link
					unsigned = append(unsigned, childRel)
				}
			case t.IsDir():
				if err := walk(childAbs, childRel); err != nil {
					return err
				}
			case name == SignatureFilename:
				if rel != "" {
					unsigned = append(unsigned, childRel)
				}
			case t.IsRegular():
				// Only a path that goes into the manifest must be UTF-8: an
				// empty directory, a symlink or a FIFO with another name
				// contributes nothing in any SDK.
				if !utf8.ValidString(childRel) {
					return nonUTF8Error(childRel)
				}
				select {
				case jobs <- job{abs: childAbs, rel: childRel}:
				case <-ctx.Done():
					return context.Cause(ctx)
				}
			default:
				skipped = append(skipped, childRel)
			}
		}
		return nil
	}
	if err := walk(base, ""); err != nil {
		cancel(err)
	}
	close(jobs)
	wg.Wait()
	if err := context.Cause(ctx); err != nil {
		return Manifest{}, canonError(dir, err)
	}
	var digests []fileDigest
	for _, r := range results {
		digests = append(digests, r...)
	}
	return finish(digests, skipped, unsigned)
}

// finish sorts the digests by path bytes and derives the root (spec §3.1);
// unsigned holds the symlinks and nested .schemapin.sig files the walk
// found, the skipped entries are added to it.
func finish(digests []fileDigest, skipped, unsigned []string) (Manifest, error) {
	if len(digests) == 0 {
		return Manifest{}, ErrEmptySkill
	}
	slices.SortFunc(digests, func(a, b fileDigest) int { return strings.Compare(a.rel, b.rel) })
	m := Manifest{Files: make(map[string]string, len(digests))}
	h := sha256.New()
	var hx [64]byte
	for _, d := range digests {
		hex.Encode(hx[:], d.sum[:])
		h.Write(hx[:])
		m.Files[d.rel] = FingerprintPrefix + string(hx[:])
	}
	h.Sum(m.Root[:0])
	slices.Sort(skipped)
	unsigned = append(unsigned, skipped...)
	slices.Sort(unsigned)
	m.Skipped, m.Unsigned = skipped, unsigned
	return m, nil
}

// ComputeRoot recomputes the root hash from a file manifest (path →
// "sha256:<64 lowercase hex>"). The daemon uses it to check that a root and
// manifest sent by a client belong together before it signs, and the
// verifier uses it to tell a tampered folder from a bad signature. Values
// must be exactly as upstream writes them: the root hashes their hex text.
func ComputeRoot(files map[string]string) ([32]byte, error) {
	var root [32]byte
	if len(files) == 0 {
		return root, ErrEmptySkill
	}
	keys := make([]string, 0, len(files))
	for k, v := range files {
		if k == "" || !utf8.ValidString(k) {
			return root, fmt.Errorf("manifest path %q is empty or not UTF-8: %w", k, errdefs.ErrInvalidArgument)
		}
		if !IsSHA256Ref(v) {
			return root, fmt.Errorf("manifest value for %q is not sha256:<64 lowercase hex>: %w", k, errdefs.ErrInvalidArgument)
		}
		keys = append(keys, k)
	}
	slices.Sort(keys)
	h := sha256.New()
	for _, k := range keys {
		io.WriteString(h, files[k][len(FingerprintPrefix):])
	}
	h.Sum(root[:0])
	return root, nil
}

// hashFile returns SHA-256(rel || contents) of the regular file at abs,
// streaming the contents through buf. The file is opened without following
// symlinks and without blocking, then fstat'ed: if it was swapped for a
// symlink, FIFO or device after the directory was listed, it is an error
// rather than a hang or a read of something outside the folder.
func hashFile(ctx context.Context, abs, rel string, buf []byte) ([32]byte, error) {
	var sum [32]byte
	f, err := openRegular(abs)
	if err != nil {
		return sum, err
	}
	defer f.Close()
	h := sha256.New()
	io.WriteString(h, rel)
	for {
		if err := ctx.Err(); err != nil {
			return sum, err
		}
		n, err := f.Read(buf)
		h.Write(buf[:n])
		if err == io.EOF {
			break
		}
		if err != nil {
			return sum, fmt.Errorf("read %s: %w", rel, err)
		}
	}
	h.Sum(sum[:0])
	return sum, nil
}

// openRegular opens path read-only, not following a final symlink and
// without blocking on a FIFO, and insists the result is a regular file.
func openRegular(path string) (*os.File, error) {
	return openRegularFlags(path, openFileFlags)
}

// openRegularFlags is openRegular with the open's flags.
func openRegularFlags(path string, flags int) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_RDONLY|flags, 0)
	if err != nil {
		return nil, err
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, err
	}
	if !st.Mode().IsRegular() {
		f.Close()
		return nil, fmt.Errorf("%s is not a regular file (%s): %w", path, st.Mode().Type(), errdefs.ErrInvalidArgument)
	}
	return f, nil
}

// readDirNoFollow lists a directory opened without following a symlink, so
// a directory swapped for a symlink mid-walk is not followed out of the
// folder.
func readDirNoFollow(path string) ([]os.DirEntry, error) {
	f, err := os.OpenFile(path, os.O_RDONLY|openDirFlags, 0)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return f.ReadDir(-1)
}

// resolveSkillDir returns the absolute, symlink-free path of dir, as Go's
// filepath.Abs + EvalSymlinks (spec §3.1; a symlinked skill folder is
// followed, its contents' symlinks are not).
func resolveSkillDir(dir string) (string, error) {
	if dir == "" {
		return "", fmt.Errorf("skill directory: empty path: %w", errdefs.ErrInvalidArgument)
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return "", fmt.Errorf("skill directory %q: %w: %w", dir, errdefs.ErrInvalidArgument, err)
	}
	base, err := filepath.EvalSymlinks(abs)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return "", fmt.Errorf("skill directory %q: %w: %w", dir, errdefs.ErrNotFound, err)
		}
		return "", fmt.Errorf("skill directory %q: %w", dir, err)
	}
	st, err := os.Stat(base)
	if err != nil {
		return "", fmt.Errorf("skill directory %q: %w", dir, err)
	}
	if !st.IsDir() {
		return "", fmt.Errorf("skill directory %q is not a directory: %w", dir, errdefs.ErrInvalidArgument)
	}
	return base, nil
}

// ErrNonUTF8Name is wrapped by the error for a file name that is not valid
// UTF-8, so that verifiers can say so rather than report a changed folder.
var ErrNonUTF8Name = errors.New("file name is not valid UTF-8")

func nonUTF8Error(rel string) error {
	return fmt.Errorf("file name %q is not valid UTF-8; SchemaPin SDKs disagree on such names (spec §3.3), rename it: %w: %w", rel, ErrNonUTF8Name, errdefs.ErrInvalidArgument)
}

// canonError prefixes walk errors with the folder and maps "does not exist"
// (a file vanished mid-walk) to ErrNotFound; context errors pass unchanged
// so callers can tell cancellation from a bad tree.
func canonError(dir string, err error) error {
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	if errors.Is(err, errdefs.ErrInvalidArgument) || errors.Is(err, errdefs.ErrNotFound) {
		return fmt.Errorf("canonicalize %s: %w", dir, err)
	}
	if errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("canonicalize %s: %w: %w", dir, errdefs.ErrNotFound, err)
	}
	return fmt.Errorf("canonicalize %s: %w", dir, err)
}
