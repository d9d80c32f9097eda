package client

// SetAfterChunk installs f to run after each chunk OpenVerified hashes, so
// a test can write to the file while it is hashed; it returns the undo.
func SetAfterChunk(f func()) (undo func()) {
	afterChunk = f
	return func() { afterChunk = nil }
}
