package edcheck

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha512"
	"fmt"
	"sync"

	"filippo.io/edwards25519"
)

// Verifier checks signatures by one Ed25519 public key. It is safe for
// concurrent use; its tables are read-only after NewVerifier.
type Verifier struct {
	pub    [ed25519.PublicKeySize]byte
	negKey *table // multiples of −A
}

var (
	baseOnce  sync.Once
	baseTable *table // multiples of the base point B, shared by all keys
)

func base() *table {
	baseOnce.Do(func() { baseTable = newTable(edwards25519.NewGeneratorPoint()) })
	return baseTable
}

// NewVerifier precomputes the tables for pub. It fails where
// crypto/ed25519.Verify would refuse every signature: a key of the wrong
// size or one that is not the encoding of a curve point.
func NewVerifier(pub ed25519.PublicKey) (*Verifier, error) {
	if len(pub) != ed25519.PublicKeySize {
		return nil, fmt.Errorf("ed25519 public key is %d bytes, want %d", len(pub), ed25519.PublicKeySize)
	}
	// SetBytes accepts what crypto/ed25519 accepts for A (it uses the same
	// decoding, non-canonical y included).
	a, err := new(edwards25519.Point).SetBytes(pub)
	if err != nil {
		return nil, fmt.Errorf("ed25519 public key is not a curve point: %w", err)
	}
	v := &Verifier{negKey: newTable(new(edwards25519.Point).Negate(a))}
	copy(v.pub[:], pub)
	base()
	return v, nil
}

// PublicKey returns the key v checks against.
func (v *Verifier) PublicKey() ed25519.PublicKey { return bytes.Clone(v.pub[:]) }

// Verify reports whether sig is a valid signature of msg by v's key, with
// crypto/ed25519.Verify's rule step by step: 64 bytes; the three high bits
// of S clear and S canonical (below the group order); k = SHA-512(R‖A‖M)
// reduced; then [S]B + [k](−A) must encode to exactly the bytes of R. The
// point is the same one crypto/ed25519 computes (the same integers times
// the same points, added with edwards25519's complete formulas, see
// extended.go), only summed from tables instead of by doubling, and its
// encoding is edwards25519's.
func (v *Verifier) Verify(msg, sig []byte) bool {
	if len(sig) != ed25519.SignatureSize || sig[63]&224 != 0 {
		return false
	}
	s, err := edwards25519.NewScalar().SetCanonicalBytes(sig[32:])
	if err != nil {
		return false
	}
	h := sha512.New()
	h.Write(sig[:32])
	h.Write(v.pub[:])
	h.Write(msg)
	var hram [sha512.Size]byte
	k, err := edwards25519.NewScalar().SetUniformBytes(h.Sum(hram[:0]))
	if err != nil {
		return false // unreachable: the digest is 64 bytes
	}
	sd, kd := digits(s.Bytes()), digits(k.Bytes())
	if base().prefetch(&sd)^v.negKey.prefetch(&kd) == 0x5a5a5a5a5a5a5a5a {
		prefetched.Add(1)
	}
	var r extended
	r.identity()
	base().mulAdd(&r, &sd)
	v.negKey.mulAdd(&r, &kd)
	var enc [32]byte
	return bytes.Equal(sig[:32], r.bytes(&enc))
}
