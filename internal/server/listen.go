package server

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"syscall"
	"time"
)

// ListenUnix creates the Unix socket at path with permission bits mode.
//
// The mode is applied through the umask while the socket is created (never
// chmod after listen, which would leave a window where the socket is more
// open than intended). The parent directory is created 0750 if missing. A
// stale socket from a crashed daemon is removed; a live one is an error.
func ListenUnix(path string, mode os.FileMode) (net.Listener, error) {
	if mode&^0o777 != 0 {
		return nil, fmt.Errorf("socket mode %o has bits outside 0777", mode)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o750); err != nil {
		return nil, fmt.Errorf("create socket directory: %w", err)
	}
	if fi, err := os.Lstat(path); err == nil {
		if fi.Mode()&os.ModeSocket == 0 {
			return nil, fmt.Errorf("%s exists and is not a socket; refusing to replace it", path)
		}
		c, err := net.DialTimeout("unix", path, time.Second)
		switch {
		case err == nil:
			c.Close()
			return nil, fmt.Errorf("%s is in use: another signerd is listening on it", path)
		case !errors.Is(err, syscall.ECONNREFUSED):
			// Not provably stale: a listener whose backlog is full
			// (EAGAIN), or one that did not answer in time, is alive.
			return nil, fmt.Errorf("%s may be in use (connecting to it: %v); remove it if no signerd listens on it", path, err)
		}
		if err := os.Remove(path); err != nil {
			return nil, fmt.Errorf("remove stale socket: %w", err)
		}
	} else if !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("inspect %s: %w", path, err)
	}
	// umask is process-wide; this runs at start-up before anything else
	// creates files concurrently.
	old := syscall.Umask(int(^mode & 0o777))
	l, err := net.Listen("unix", path)
	syscall.Umask(old)
	if err != nil {
		return nil, fmt.Errorf("listen on %s: %w", path, err)
	}
	l.(*net.UnixListener).SetUnlinkOnClose(true)
	return l, nil
}
