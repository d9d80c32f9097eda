package pkgsig

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"syscall"

	"github.com/signerd/signerd/internal/errdefs"
)

// DigestSize is the length of a package digest in bytes.
const DigestSize = sha256.Size

// hashBufSize is large enough that syscall overhead is negligible against
// SHA-256 throughput, small enough that memory stays flat.
const hashBufSize = 1 << 20

// HashReader streams r through SHA-256. The context is checked between
// chunks so a cancelled command stops promptly on a huge file.
func HashReader(ctx context.Context, r io.Reader) ([DigestSize]byte, error) {
	var sum [DigestSize]byte
	h := sha256.New()
	buf := make([]byte, hashBufSize)
	for {
		if err := ctx.Err(); err != nil {
			return sum, err
		}
		n, err := r.Read(buf)
		if n > 0 {
			h.Write(buf[:n])
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			return sum, err
		}
	}
	copy(sum[:], h.Sum(nil))
	return sum, nil
}

// HashFile hashes the regular file at path. Directories and other
// non-regular files are refused with ErrInvalidArgument.
func HashFile(ctx context.Context, path string) ([DigestSize]byte, error) {
	// O_NONBLOCK: opening a FIFO (or a device) must not block waiting for a
	// writer; it is refused as not regular just below. Regular files ignore
	// the flag.
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return [DigestSize]byte{}, fmt.Errorf("open %s: %w", path, wrapFS(err))
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return [DigestSize]byte{}, fmt.Errorf("stat %s: %w", path, wrapFS(err))
	}
	if !st.Mode().IsRegular() {
		return [DigestSize]byte{}, fmt.Errorf("%s is not a regular file: %w", path, errdefs.ErrInvalidArgument)
	}
	sum, err := HashReader(ctx, f)
	if err != nil {
		return sum, fmt.Errorf("read %s: %w", path, wrapFS(err))
	}
	return sum, nil
}

// HexDigest formats a digest as Cloacina does: lowercase hex.
func HexDigest(d []byte) string { return hex.EncodeToString(d) }

// ParseHexDigest parses a lowercase hex SHA-256 digest.
func ParseHexDigest(s string) ([DigestSize]byte, error) {
	var d [DigestSize]byte
	if len(s) != 2*DigestSize || !isLowerHex(s) {
		return d, fmt.Errorf("digest %q is not 64 lowercase hex characters: %w", s, errdefs.ErrInvalidArgument)
	}
	_, _ = hex.Decode(d[:], []byte(s))
	return d, nil
}

func isLowerHex(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// wrapFS classifies file-system errors as bad input: the user named a file
// that cannot be read.
func wrapFS(err error) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("%w: %w", errdefs.ErrInvalidArgument, err)
}
