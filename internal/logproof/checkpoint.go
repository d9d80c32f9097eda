package logproof

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"golang.org/x/mod/sumdb/note"
)

// HashSize is the size of every tree hash (SHA-256).
const HashSize = 32

// MaxNoteSize bounds a signed note this package reads: a checkpoint is an
// origin, two numbers' worth of lines and a few signatures.
const MaxNoteSize = 16 << 10

// ErrCheckpoint is the kind of every refusal of a checkpoint: a note that
// does not parse, is not signed by the expected key, or is not a
// tlog-checkpoint.
var ErrCheckpoint = errors.New("checkpoint refused")

// Checkpoint is a parsed C2SP tlog-checkpoint body.
type Checkpoint struct {
	Origin string
	Size   uint64
	Root   []byte
	// Extensions are the optional lines after the root hash.
	Extensions []string
}

// ParseCheckpoint parses a checkpoint body (the note's text, without
// signatures): the origin line, the tree size in decimal, the base64 root
// hash, then optional extension lines, each line ending in a newline.
func ParseCheckpoint(text string) (Checkpoint, error) {
	if !strings.HasSuffix(text, "\n") {
		return Checkpoint{}, fmt.Errorf("%w: the body does not end in a newline", ErrCheckpoint)
	}
	lines := strings.Split(strings.TrimSuffix(text, "\n"), "\n")
	if len(lines) < 3 {
		return Checkpoint{}, fmt.Errorf("%w: %d lines; a checkpoint has an origin, a tree size and a root hash", ErrCheckpoint, len(lines))
	}
	c := Checkpoint{Origin: lines[0]}
	if c.Origin == "" {
		return Checkpoint{}, fmt.Errorf("%w: empty origin line", ErrCheckpoint)
	}
	// Decimal, no sign, no leading zeros (C2SP tlog-checkpoint).
	if s := lines[1]; s == "" || (len(s) > 1 && s[0] == '0') || strings.TrimLeft(s, "0123456789") != "" {
		return Checkpoint{}, fmt.Errorf("%w: tree size %q is not a decimal number", ErrCheckpoint, s)
	}
	size, err := strconv.ParseUint(lines[1], 10, 64)
	if err != nil {
		return Checkpoint{}, fmt.Errorf("%w: tree size %q: %v", ErrCheckpoint, lines[1], err)
	}
	c.Size = size
	root, err := base64.StdEncoding.Strict().DecodeString(lines[2])
	if err != nil || len(root) != HashSize {
		return Checkpoint{}, fmt.Errorf("%w: root hash %q is not base64 of %d bytes", ErrCheckpoint, lines[2], HashSize)
	}
	c.Root = root
	for _, l := range lines[3:] {
		if l == "" {
			return Checkpoint{}, fmt.Errorf("%w: empty extension line", ErrCheckpoint)
		}
		c.Extensions = append(c.Extensions, l)
	}
	return c, nil
}

// Verifier reads a note verifier key (NAME+HEX8+BASE64, as `signctl log
// public-key` prints it). Surrounding white space is ignored so that a key
// saved to a file with a trailing newline reads.
func Verifier(vkey string) (note.Verifier, error) {
	v, err := note.NewVerifier(strings.TrimSpace(vkey))
	if err != nil {
		return nil, fmt.Errorf("log key %q: %w", strings.TrimSpace(vkey), err)
	}
	return v, nil
}

// OpenCheckpoint verifies a signed note with the log key and parses its
// body as a checkpoint. Signatures by other keys are allowed (witness
// cosignatures) but one by the log key must be present and valid.
func OpenCheckpoint(signed []byte, v note.Verifier) (Checkpoint, error) {
	if len(signed) > MaxNoteSize {
		return Checkpoint{}, fmt.Errorf("%w: the signed note is %d bytes, more than %d", ErrCheckpoint, len(signed), MaxNoteSize)
	}
	n, err := note.Open(signed, note.VerifierList(v))
	if err != nil {
		var unverified *note.UnverifiedNoteError
		var invalid *note.InvalidSignatureError
		switch {
		case errors.As(err, &unverified):
			// No signature line by the log key: signed by another key.
			return Checkpoint{}, fmt.Errorf("%w: not signed by the log key %s (%v)", ErrCheckpoint, v.Name(), err)
		case errors.As(err, &invalid):
			return Checkpoint{}, fmt.Errorf("%w: the log key's signature does not verify (%v)", ErrCheckpoint, err)
		}
		return Checkpoint{}, fmt.Errorf("%w: %v", ErrCheckpoint, err)
	}
	return ParseCheckpoint(n.Text)
}

// sameRoot reports whether two checkpoints name the same tree.
func sameRoot(a, b Checkpoint) bool {
	return a.Size == b.Size && bytes.Equal(a.Root, b.Root)
}
