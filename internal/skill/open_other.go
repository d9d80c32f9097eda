//go:build !unix

package skill

// Without O_NOFOLLOW/O_NONBLOCK the lstat type from the directory listing
// is the only guard; openRegular's fstat check still rejects non-regular
// files once opened.
const (
	openFileFlags     = 0
	openDocumentFlags = 0
	openDirFlags      = 0
)
