//go:build !amd64 || purego

package eccheck

import "unsafe"

// newImpl: elsewhere the check runs on nistec's public API (generic.go).
func newImpl(raw []byte) impl { return newTable(raw) }

// tableBytes is what the generic table holds.
const tableBytes = int(unsafe.Sizeof(table{}))
