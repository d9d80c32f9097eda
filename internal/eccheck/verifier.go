package eccheck

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"errors"
	"fmt"
	"math/big"

	"filippo.io/nistec"
)

// positions is the number of signed radix-256 digits of a scalar below
// the group order n < 2^256: 32 bytes, and a 33rd digit for the final
// carry (which is then 1).
const positions = 33

// half is the largest digit magnitude: digits are in [−128, 127], so each
// position needs the multiples 1..128.
const half = 128

// VerifierBytes is the memory a Verifier holds (its key's table), for
// callers that bound a cache of them.
const VerifierBytes = tableBytes

// n is the order of P-256's base point.
var n = elliptic.P256().Params().N

// impl is a Verifier's arithmetic: the assembly one on amd64 (p256_amd64.go),
// nistec's public API elsewhere (generic.go).
type impl interface {
	// verify reports whether (r, s) verifies for digest integer e; r and
	// s are in [1, n−1] and e is below 2^256, each as 32 big-endian bytes.
	verify(e, r, s *[32]byte) bool
}

// Verifier checks signatures by one P-256 key; it is safe for concurrent
// use.
type Verifier struct {
	pub ecdsa.PublicKey
	impl
}

// NewVerifier computes the multiples of pub (4,191 point additions and 32
// doublings, about 2 ms here, once per key). It refuses a key that is not
// a valid P-256 point.
func NewVerifier(pub *ecdsa.PublicKey) (*Verifier, error) {
	if pub == nil || pub.Curve != elliptic.P256() {
		return nil, errors.New("eccheck: not a P-256 public key")
	}
	raw, err := pub.Bytes()
	if err != nil {
		return nil, fmt.Errorf("eccheck: public key: %w", err)
	}
	// nistec checks the point is on the curve.
	if _, err := nistec.NewP256Point().SetBytes(raw); err != nil {
		return nil, fmt.Errorf("eccheck: public key: %w", err)
	}
	// A copy of the key: the caller's big.Ints may change, the table not.
	return &Verifier{pub: copyKey(pub), impl: newImpl(raw)}, nil
}

func copyKey(pub *ecdsa.PublicKey) ecdsa.PublicKey {
	return ecdsa.PublicKey{Curve: pub.Curve, X: new(big.Int).Set(pub.X), Y: new(big.Int).Set(pub.Y)}
}

// PublicKey returns (a copy of) the key the Verifier checks signatures of.
func (v *Verifier) PublicKey() *ecdsa.PublicKey { p := copyKey(&v.pub); return &p }

// Verify reports whether (r, s) is a valid signature of hash by the key,
// exactly as crypto/ecdsa.Verify(v.PublicKey(), hash, r, s) would; a nil r
// or s, on which crypto/ecdsa.Verify panics, is refused.
func (v *Verifier) Verify(hash []byte, r, s *big.Int) bool {
	if r == nil || s == nil || r.Sign() <= 0 || s.Sign() <= 0 || r.Cmp(n) >= 0 || s.Cmp(n) >= 0 {
		return false
	}
	// e: the leftmost bits of hash, as many as n has (256); the
	// implementation reduces it mod n.
	if len(hash) > 32 {
		hash = hash[:32]
	}
	var e, rb, sb [32]byte
	copy(e[32-len(hash):], hash)
	r.FillBytes(rb[:])
	s.FillBytes(sb[:])
	return v.impl.verify(&e, &rb, &sb)
}

// digits returns the signed radix-256 digits of the 32-byte big-endian
// scalar u, least significant first: u = Σ d[i]·256^i with d[i] in
// [−128, 127].
func digits(u *[32]byte) (d [positions]int) {
	carry := 0
	for i := range positions {
		v := carry
		if i < 32 {
			v += int(u[31-i])
		}
		carry = 0
		if v >= half {
			v -= 256
			carry = 1
		}
		d[i] = v
	}
	return d
}
