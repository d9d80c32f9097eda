package client

// SetAfterChunk installs f to run after each chunk OpenVerified hashes, so
// a test can write to the file while it is hashed; it returns the undo.
func SetAfterChunk(f func()) (undo func()) {
	afterChunk = f
	return func() { afterChunk = nil }
}

// SetAfterTypeCheck installs f to run after OpenVerified found that path
// names a regular file and before it opens it for reading, so a test can
// swap the path for a FIFO in between; it returns the undo.
func SetAfterTypeCheck(f func()) (undo func()) {
	afterTypeCheck = f
	return func() { afterTypeCheck = nil }
}
