//go:build unix

package skill

import "syscall"

// O_NOFOLLOW refuses a file swapped for a symlink after it was listed;
// O_NONBLOCK makes opening a FIFO return at once instead of waiting for a
// writer (regular-file reads ignore it). openRegular then rejects anything
// that is not a regular file.
//
// openDocumentFlags are for the folder's own .schemapin.sig, which every
// SDK reads through a symlink: followed, but still not waiting on a FIFO.
const (
	openFileFlags     = syscall.O_NOFOLLOW | syscall.O_NONBLOCK
	openDocumentFlags = syscall.O_NONBLOCK
	openDirFlags      = syscall.O_NOFOLLOW | syscall.O_DIRECTORY
)
