package skill

import (
	"crypto/sha256"
	"io"
	"slices"
	"unicode/utf16"
)

// PathOrder names the order in which a canonicalization sorted the paths
// of the file manifest before hashing their digests into the root.
type PathOrder string

// Path orders. The specification sorts by UTF-8 bytes (Go, Python and
// Rust SDKs); the JavaScript SDK's Array.prototype.sort compares UTF-16
// code units, which differs once a folder holds both a name with a
// character above U+FFFF (an emoji, four UTF-8 bytes, a surrogate pair in
// UTF-16) and one with a character in U+E000–U+FFFF (such as the
// fullwidth forms): the surrogate unit 0xD83D sorts before 0xFF46 while
// the lead byte 0xF0 sorts after 0xEF (spec §3.3).
const (
	PathOrderUTF8  PathOrder = "utf8"
	PathOrderUTF16 PathOrder = "utf16"
)

// compareUTF16 orders two strings by their UTF-16 code units, as
// JavaScript's default sort does.
func compareUTF16(a, b string) int {
	return slices.Compare(utf16.Encode([]rune(a)), utf16.Encode([]rune(b)))
}

// ComputeRootUTF16 is ComputeRoot with the paths in UTF-16 code unit
// order: the root the JavaScript SDK signs for the same folder.
func ComputeRootUTF16(files map[string]string) ([32]byte, error) {
	var root [32]byte
	if _, err := ComputeRoot(files); err != nil { // validates paths and values
		return root, err
	}
	keys := make([]string, 0, len(files))
	for k := range files {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, compareUTF16)
	h := sha256.New()
	for _, k := range keys {
		io.WriteString(h, files[k][len(FingerprintPrefix):])
	}
	h.Sum(root[:0])
	return root, nil
}
