package client

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/signerd/signerd/internal/errdefs"
	"github.com/signerd/signerd/internal/pkgsig"
)

// VerifiedFile is an artifact signerd let the org load, still open on the
// descriptor that was hashed.
type VerifiedFile struct {
	// File is the descriptor that was hashed, rewound to offset 0. Read or
	// mmap it; do not reopen the original path.
	File *os.File
	// Path is /proc/self/fd/N: it names File's descriptor, not the path
	// on disk, for loaders that need a path (dlopen). It is valid until
	// Close.
	Path string
	// Digest is the SHA-256 of the bytes that were hashed.
	Digest [DigestSize]byte
	// Verdict is why it may be loaded: check Verdict.Verified when only
	// signed artifacts will do.
	Verdict Verdict
}

// Close closes the descriptor.
func (v *VerifiedFile) Close() error { return v.File.Close() }

// VerifyOption configures OpenVerified.
type VerifyOption func(*verifyOptions)

type verifyOptions struct {
	doc    []byte
	hasDoc bool
	sealed bool
}

// WithSignature sends doc as the detached signature document instead of
// reading path+".sig".
func WithSignature(doc []byte) VerifyOption {
	return func(o *verifyOptions) { o.doc, o.hasDoc = doc, true }
}

// WithSealedCopy makes OpenVerified copy the bytes it hashes into a sealed
// memory file (Linux memfd with every seal: no write, no resize, no new
// seals) and return that instead of the file on disk. Without it, the
// returned descriptor is the file's own inode, which anyone who may write
// the file can change in place after the check; with it, what File and
// Path give is exactly the verified bytes whatever happens on disk. It
// costs the file's size in memory (shared when the loader mmaps it).
func WithSealedCopy() VerifyOption {
	return func(o *verifyOptions) { o.sealed = true }
}

// maxSignatureSize bounds a detached .sig document read from disk: the
// largest that signerd (and signctl) read, pkgsig.MaxDocumentSize; a
// larger one is a malformed signature, as there.
const maxSignatureSize = pkgsig.MaxDocumentSize

// afterChunk, when set by tests, runs after each chunk is hashed: it
// stands for another process writing to the file while it is hashed.
var afterChunk func()

// OpenVerified opens the regular file at path once, hashes that open
// descriptor, asks signerd whether org may load it, and returns it rewound.
// The detached signature is WithSignature's document if given, else
// path+".sig" if that file exists (as for signctl verify), else signerd's
// records.
//
// Symbolic links are followed: the check binds the bytes of the inode that
// was opened, not the name, so a link (libfoo.so → libfoo.so.1) is as safe
// as the file it points to, and refusing links (O_NOFOLLOW) would refuse
// the usual layout of shared libraries for no gain.
//
// It refuses, with a typed error and no open file: a path that is not a
// regular file (ErrNotRegularFile, checked on an O_PATH descriptor before
// the inode is opened for reading, so a FIFO or device is never opened,
// even one swapped in after the check, and again on the descriptor); a
// file whose size or modification time changed while it was hashed, or
// whose length did
// not match its size (ErrFileChanged); and every refusal of Verify
// (ErrTampered, ErrUnknownOrg, …), ErrUnavailable and ErrPermissionDenied.
func (c *Client) OpenVerified(ctx context.Context, path, org string, opts ...VerifyOption) (*VerifiedFile, error) {
	var o verifyOptions
	for _, opt := range opts {
		opt(&o)
	}
	if org == "" {
		return nil, fmt.Errorf("open %s: no org given: %w", path, errdefs.ErrInvalidArgument)
	}
	f, digest, err := openAndHash(ctx, path, o.sealed)
	if err != nil {
		return nil, err
	}
	vf, err := c.verifyOpen(ctx, f, path, org, digest, o)
	if err != nil {
		f.Close()
		return nil, err
	}
	return vf, nil
}

func (c *Client) verifyOpen(ctx context.Context, f *os.File, path, org string, digest [DigestSize]byte, o verifyOptions) (*VerifiedFile, error) {
	doc := o.doc
	if !o.hasDoc {
		// FILE.sig, else Cloacina's FILE..sig for a name without an
		// extension (pkgsig.SidecarPaths).
		for _, p := range pkgsig.SidecarPaths(path) {
			var err error
			if doc, err = readSidecar(p); err != nil {
				return nil, err
			}
			if doc != nil {
				break
			}
		}
	}
	verdict, err := c.Verify(ctx, org, digest, doc)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return nil, fmt.Errorf("rewind %s: %w", path, err)
	}
	return &VerifiedFile{File: f, Path: fmt.Sprintf("/proc/self/fd/%d", f.Fd()), Digest: digest, Verdict: verdict}, nil
}

// openAndHash opens path read-only and hashes the descriptor, refusing
// anything but a regular file that stays the same while it is read. With
// sealed, it returns a sealed memory copy of the bytes it hashed instead
// of the file.
func openAndHash(ctx context.Context, path string, sealed bool) (*os.File, [DigestSize]byte, error) {
	var digest [DigestSize]byte
	// O_PATH first: it resolves the path to an inode without opening it
	// for I/O, so a FIFO or a device is refused without ever being opened
	// (opening one can block, or act on the device). The inode is then
	// opened for reading through /proc/self/fd/N, which names that inode
	// and not the path: a path swapped for a FIFO or device after the
	// check is never opened.
	pf, err := os.OpenFile(path, unix.O_PATH|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, digest, fmt.Errorf("open %s: %w", path, fsError(err))
	}
	st, err := pf.Stat()
	if err != nil {
		pf.Close()
		return nil, digest, fmt.Errorf("stat %s: %w", path, fsError(err))
	}
	if !st.Mode().IsRegular() {
		pf.Close()
		return nil, digest, fmt.Errorf("%s (%s): %w", path, fileKind(st.Mode()), ErrNotRegularFile)
	}
	if afterTypeCheck != nil {
		afterTypeCheck()
	}
	// O_NONBLOCK: regular files ignore it, and hashOpen checks the type
	// again on the descriptor.
	f, err := os.OpenFile(fmt.Sprintf("/proc/self/fd/%d", pf.Fd()), os.O_RDONLY|syscall.O_NONBLOCK, 0)
	pf.Close()
	if err != nil {
		return nil, digest, fmt.Errorf("open %s: %w", path, fsError(err))
	}
	var copyTo *os.File
	if sealed {
		if copyTo, err = newMemfd(path); err != nil {
			f.Close()
			return nil, digest, err
		}
	}
	digest, err = hashOpen(ctx, f, path, copyTo)
	if err == nil && copyTo != nil {
		err = seal(copyTo, path)
	}
	if copyTo != nil {
		f.Close()
		f = copyTo
	}
	if err != nil {
		f.Close()
		return nil, digest, err
	}
	return f, digest, nil
}

// hashOpen hashes the regular file open on f to its end, and checks that
// it held exactly its size and did not change meanwhile. Every byte it
// hashes is also written to copyTo when that is not nil.
func hashOpen(ctx context.Context, f *os.File, path string, copyTo *os.File) ([DigestSize]byte, error) {
	var digest [DigestSize]byte
	before, err := f.Stat()
	if err != nil {
		return digest, fmt.Errorf("stat %s: %w", path, fsError(err))
	}
	if !before.Mode().IsRegular() {
		return digest, fmt.Errorf("%s (%s, swapped in after it was checked): %w", path, fileKind(before.Mode()), ErrNotRegularFile)
	}
	h := sha256.New()
	buf := make([]byte, 1<<20)
	var n int64
	// Reading one byte past the size is enough to know the file held more
	// than it said; a file that keeps growing does not keep us reading.
	r := io.LimitReader(f, before.Size()+1)
	for {
		if err := ctx.Err(); err != nil {
			return digest, err
		}
		k, err := r.Read(buf)
		h.Write(buf[:k])
		if copyTo != nil && k > 0 {
			if _, werr := copyTo.Write(buf[:k]); werr != nil {
				return digest, fmt.Errorf("copy %s into memory: %w", path, werr)
			}
		}
		n += int64(k)
		if k > 0 && afterChunk != nil {
			afterChunk()
		}
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return digest, fmt.Errorf("read %s: %w", path, fsError(err))
		}
	}
	after, err := f.Stat()
	if err != nil {
		return digest, fmt.Errorf("stat %s: %w", path, fsError(err))
	}
	switch {
	case after.Size() != before.Size():
		return digest, fmt.Errorf("%s: its size went from %d to %d bytes while it was hashed: %w", path, before.Size(), after.Size(), ErrFileChanged)
	case n != before.Size():
		return digest, fmt.Errorf("%s: read %d bytes or more from a file whose size is %d: %w", path, n, before.Size(), ErrFileChanged)
	case !after.ModTime().Equal(before.ModTime()):
		return digest, fmt.Errorf("%s: modified while it was hashed: %w", path, ErrFileChanged)
	}
	copy(digest[:], h.Sum(nil))
	return digest, nil
}

// readSidecar returns the .sig document at path, or nil if there is none.
func readSidecar(path string) ([]byte, error) {
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("signature %s: %w", path, fsError(err))
	}
	defer f.Close()
	if st, err := f.Stat(); err != nil || !st.Mode().IsRegular() {
		return nil, fmt.Errorf("signature %s: %w", path, ErrNotRegularFile)
	}
	doc, err := io.ReadAll(io.LimitReader(f, maxSignatureSize+1))
	if err != nil {
		return nil, fmt.Errorf("signature %s: %w", path, fsError(err))
	}
	if len(doc) > maxSignatureSize {
		return nil, errdefs.Verification(errdefs.ReasonMalformedSignature, "signature %s is larger than %d bytes", path, maxSignatureSize)
	}
	return doc, nil
}

// fsError classifies a file-system error as bad input: a file the caller
// may not read too (as for signctl: exit 2; errors.Is(err,
// fs.ErrPermission) still tells it apart). ErrPermissionDenied is
// signerd's socket or policy.
func fsError(err error) error {
	return fmt.Errorf("%w: %w", errdefs.ErrInvalidArgument, err)
}

func fileKind(m fs.FileMode) string {
	switch {
	case m.IsDir():
		return "a directory"
	case m&fs.ModeNamedPipe != 0:
		return "a FIFO"
	case m&fs.ModeSocket != 0:
		return "a socket"
	case m&fs.ModeDevice != 0:
		return "a device"
	}
	return "not a regular file"
}

// afterTypeCheck, when set by tests, runs after path was found to be a
// regular file and before it is opened for reading.
var afterTypeCheck func()
