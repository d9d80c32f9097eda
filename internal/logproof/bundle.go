package logproof

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"
	"golang.org/x/mod/sumdb/note"
)

// Bounds on what a bundle may hold. A tree of 2^64 leaves has audit paths
// of at most 64 hashes; a record's encoding is a few hundred bytes.
const (
	MaxProofHashes = 64
	MaxLeafSize    = 64 << 10
	MaxBundleSize  = 256 << 10
)

// ErrBundle is the kind of every refusal of a proof bundle: malformed, or
// not proving what it claims.
var ErrBundle = errors.New("proof bundle refused")

// Bundle is the proof that one record is in the log, as `signctl log proof
// -o json` writes it and `signctl verify --require-proof` reads it. JSON
// carries []byte as standard base64.
type Bundle struct {
	Origin string `json:"origin"`
	// Leaf is the audit record's canonical encoding.
	Leaf      []byte `json:"leaf"`
	LeafIndex uint64 `json:"leaf_index"`
	TreeSize  uint64 `json:"tree_size"`
	// InclusionProof is the RFC 9162 audit path, leaf to root.
	InclusionProof [][]byte `json:"inclusion_proof"`
	// Checkpoint is the signed note's text.
	Checkpoint string `json:"checkpoint"`
}

// ParseBundle reads a bundle's JSON strictly: unknown fields, trailing data
// and out-of-bounds sizes are errors.
func ParseBundle(data []byte) (Bundle, error) {
	if len(data) > MaxBundleSize {
		return Bundle{}, fmt.Errorf("%w: %d bytes, more than %d", ErrBundle, len(data), MaxBundleSize)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var b Bundle
	if err := dec.Decode(&b); err != nil {
		return Bundle{}, fmt.Errorf("%w: not a proof bundle: %v", ErrBundle, err)
	}
	if dec.More() {
		return Bundle{}, fmt.Errorf("%w: data after the JSON object", ErrBundle)
	}
	if err := b.checkShape(); err != nil {
		return Bundle{}, err
	}
	return b, nil
}

// checkShape checks what can be checked without keys.
func (b Bundle) checkShape() error {
	switch {
	case b.Origin == "":
		return fmt.Errorf("%w: no origin", ErrBundle)
	case len(b.Leaf) == 0:
		return fmt.Errorf("%w: no leaf", ErrBundle)
	case len(b.Leaf) > MaxLeafSize:
		return fmt.Errorf("%w: the leaf is %d bytes, more than %d", ErrBundle, len(b.Leaf), MaxLeafSize)
	case b.LeafIndex >= b.TreeSize:
		return fmt.Errorf("%w: leaf index %d is not below tree size %d", ErrBundle, b.LeafIndex, b.TreeSize)
	case len(b.InclusionProof) > MaxProofHashes:
		return fmt.Errorf("%w: %d proof hashes, more than %d", ErrBundle, len(b.InclusionProof), MaxProofHashes)
	case b.Checkpoint == "":
		return fmt.Errorf("%w: no checkpoint", ErrBundle)
	}
	for i, h := range b.InclusionProof {
		if len(h) != HashSize {
			return fmt.Errorf("%w: inclusion_proof[%d] is %d bytes, not %d", ErrBundle, i, len(h), HashSize)
		}
	}
	return nil
}

// Verify checks that the bundle proves its leaf is in the log whose key v
// signs checkpoints: the checkpoint is a note signed by v, of the bundle's
// origin and tree size, and the inclusion proof leads from the leaf's hash
// to the checkpoint's root. It says nothing about what the leaf records;
// the caller checks that (it knows the record encoding). It returns the
// checkpoint.
func (b Bundle) Verify(v note.Verifier) (Checkpoint, error) {
	if err := b.checkShape(); err != nil {
		return Checkpoint{}, err
	}
	cp, err := OpenCheckpoint([]byte(b.Checkpoint), v)
	if err != nil {
		return Checkpoint{}, err
	}
	if cp.Origin != b.Origin {
		return Checkpoint{}, fmt.Errorf("%w: the checkpoint is of origin %q, the bundle names %q", ErrBundle, cp.Origin, b.Origin)
	}
	if cp.Size != b.TreeSize {
		return Checkpoint{}, fmt.Errorf("%w: the checkpoint is of tree size %d, the bundle names %d", ErrBundle, cp.Size, b.TreeSize)
	}
	leafHash := rfc6962.DefaultHasher.HashLeaf(b.Leaf)
	if err := proof.VerifyInclusion(rfc6962.DefaultHasher, b.LeafIndex, b.TreeSize, leafHash, b.InclusionProof, cp.Root); err != nil {
		return Checkpoint{}, fmt.Errorf("%w: the inclusion proof of leaf %d does not lead to the checkpoint's root: %v", ErrBundle, b.LeafIndex, err)
	}
	return cp, nil
}
