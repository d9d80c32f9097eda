package skill

import (
	"crypto/sha256"
	"fmt"
	"hash"
	"io"
	"unicode/utf8"

	"github.com/signerd/signerd/internal/errdefs"
)

// RootBuilder computes a manifest's root (ComputeRoot) from its entries
// given one at a time in byte order of path, holding only the last path:
// a manifest that arrives in pieces (SignSkillStream) then costs the same
// memory whatever its number of files.
type RootBuilder struct {
	h    hash.Hash
	last string
	n    int
}

// NewRootBuilder starts a root.
func NewRootBuilder() *RootBuilder { return &RootBuilder{h: sha256.New()} }

// Add takes the next entry; paths must be valid UTF-8, non-empty and in
// strictly increasing byte order (ComputeRoot's sort, without duplicates).
func (b *RootBuilder) Add(path, value string) error {
	if path == "" || !utf8.ValidString(path) {
		return fmt.Errorf("manifest path %s is empty or not UTF-8: %w", errdefs.Quote(path), errdefs.ErrInvalidArgument)
	}
	if b.n > 0 && path <= b.last {
		return fmt.Errorf("manifest path %s does not follow %s in byte order: %w", errdefs.Quote(path), errdefs.Quote(b.last), errdefs.ErrInvalidArgument)
	}
	if !IsSHA256Ref(value) {
		return fmt.Errorf("manifest value for %s is not sha256:<64 lowercase hex>: %w", errdefs.Quote(path), errdefs.ErrInvalidArgument)
	}
	io.WriteString(b.h, value[len(FingerprintPrefix):])
	b.last = path
	b.n++
	return nil
}

// Len is the number of entries added.
func (b *RootBuilder) Len() int { return b.n }

// Root returns the root of the entries added; ErrEmptySkill if none.
func (b *RootBuilder) Root() ([32]byte, error) {
	var root [32]byte
	if b.n == 0 {
		return root, ErrEmptySkill
	}
	b.h.Sum(root[:0])
	return root, nil
}
