package eccheck

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"errors"
	"fmt"
	"math/big"
	"unsafe"

	"filippo.io/nistec"
)

// positions is the number of signed radix-256 digits of a scalar below
// the group order n < 2^256: 32 bytes, and a 33rd digit for the final
// carry (which is then 1).
const positions = 33

// half is the largest digit magnitude: digits are in [−128, 127], so each
// position needs the multiples 1..128.
const half = 128

// table holds [(j+1)·256^i]Q for i < positions and j < half.
type table [positions][half]nistec.P256Point

// VerifierBytes is the memory a Verifier holds (its key's table), for
// callers that bound a cache of them.
const VerifierBytes = int(unsafe.Sizeof(table{}))

// n is the order of P-256's base point.
var n = elliptic.P256().Params().N

// Verifier checks signatures by one P-256 key; it is safe for concurrent
// use.
type Verifier struct {
	pub ecdsa.PublicKey
	t   *table
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
	q, err := nistec.NewP256Point().SetBytes(raw)
	if err != nil {
		return nil, fmt.Errorf("eccheck: public key: %w", err)
	}
	t := new(table)
	base := nistec.NewP256Point().Set(q) // 256^i · Q
	for i := range positions {
		t[i][0].Set(base)
		for j := 1; j < half; j++ {
			t[i][j].Add(&t[i][j-1], base)
		}
		// 256^(i+1)·Q = 2·(128·256^i·Q).
		if i+1 < positions {
			base.Double(&t[i][half-1])
		}
	}
	// A copy of the key: the caller's big.Ints may change, the table not.
	return &Verifier{pub: copyKey(pub), t: t}, nil
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
	// e: the leftmost bits of hash, as many as n has (256), mod n.
	if len(hash) > 32 {
		hash = hash[:32]
	}
	e := new(big.Int).SetBytes(hash)
	e.Mod(e, n)
	w := new(big.Int).ModInverse(s, n)
	if w == nil {
		return false // unreachable: n is prime and 0 < s < n
	}
	u1 := e.Mul(e, w)
	u1.Mod(u1, n)
	u2 := w.Mul(r, w)
	u2.Mod(u2, n)

	var b1, b2 [32]byte
	p, err := nistec.NewP256Point().ScalarBaseMult(u1.FillBytes(b1[:]))
	if err != nil {
		return false
	}
	v.t.mulAdd(p, u2.FillBytes(b2[:]))
	x, err := p.BytesX() // an error for the point at infinity
	if err != nil {
		return false
	}
	xn := new(big.Int).SetBytes(x)
	xn.Mod(xn, n)
	return xn.Cmp(r) == 0
}

// mulAdd sets acc += [u]Q, u given as 32 big-endian bytes.
func (t *table) mulAdd(acc *nistec.P256Point, u []byte) {
	var neg nistec.P256Point
	carry := 0
	for i := range positions {
		d := carry
		if i < 32 {
			d += int(u[31-i])
		}
		carry = 0
		if d >= half {
			d -= 256
			carry = 1
		}
		switch {
		case d > 0:
			acc.Add(acc, &t[i][d-1])
		case d < 0:
			acc.Add(acc, neg.Negate(&t[i][-d-1]))
		}
	}
}
