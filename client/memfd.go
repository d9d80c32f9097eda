package client

import (
	"fmt"
	"io"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"
)

// newMemfd creates the memory file WithSealedCopy fills: close-on-exec,
// sealable, named after the artifact (the name shows in /proc/PID/maps,
// where a loaded library is then "/memfd:NAME (deleted)").
func newMemfd(path string) (*os.File, error) {
	fd, err := unix.MemfdCreate("signerd-verified:"+baseName(path), unix.MFD_CLOEXEC|unix.MFD_ALLOW_SEALING)
	if err != nil {
		return nil, fmt.Errorf("sealed copy of %s: memfd_create: %w", path, err)
	}
	return os.NewFile(uintptr(fd), "/memfd:"+baseName(path)), nil
}

// seal forbids every further change to the memory file (writes, growing,
// shrinking, and new seals, so none can be taken off) and rewinds it.
func seal(f *os.File, path string) error {
	const all = unix.F_SEAL_SEAL | unix.F_SEAL_SHRINK | unix.F_SEAL_GROW | unix.F_SEAL_WRITE
	if _, err := unix.FcntlInt(f.Fd(), unix.F_ADD_SEALS, all); err != nil {
		return fmt.Errorf("sealed copy of %s: F_ADD_SEALS: %w", path, err)
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return fmt.Errorf("sealed copy of %s: rewind: %w", path, err)
	}
	return nil
}

// baseName is path's last element, at most 200 bytes (memfd names are
// limited to 249).
func baseName(path string) string {
	b := filepath.Base(path)
	if len(b) > 200 {
		b = b[:200]
	}
	return b
}
