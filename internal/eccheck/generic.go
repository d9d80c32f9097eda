package eccheck

import (
	"crypto/elliptic"
	"math/big"

	"filippo.io/nistec"
)

// table holds [(j+1)·256^i]Q for i < positions and j < half.
type table [positions][half]nistec.P256Point

// newTable computes the multiples of the (valid, encoded) point raw.
func newTable(raw []byte) *table {
	q, err := nistec.NewP256Point().SetBytes(raw)
	if err != nil {
		panic("eccheck: " + err.Error()) // NewVerifier checked raw
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
	return t
}

// verify is FIPS 186-5 §6.4.2 on nistec's public API: [u1]G is nistec's
// constant-time ScalarBaseMult, [u2]Q the table's, with big.Int scalars.
func (t *table) verify(e, r, s *[32]byte) bool {
	ei := new(big.Int).SetBytes(e[:])
	ei.Mod(ei, n)
	ri := new(big.Int).SetBytes(r[:])
	w := new(big.Int).ModInverse(new(big.Int).SetBytes(s[:]), n)
	if w == nil {
		return false // unreachable: n is prime and 0 < s < n
	}
	u1 := ei.Mul(ei, w)
	u1.Mod(u1, n)
	u2 := w.Mul(ri, w)
	u2.Mod(u2, n)

	var b1, b2 [32]byte
	p, err := nistec.NewP256Point().ScalarBaseMult(u1.FillBytes(b1[:]))
	if err != nil {
		return false
	}
	t.mulAdd(p, (*[32]byte)(u2.FillBytes(b2[:])))
	x, err := p.BytesX() // an error for the point at infinity
	if err != nil {
		return false
	}
	xn := new(big.Int).SetBytes(x)
	xn.Mod(xn, n)
	return xn.Cmp(ri) == 0
}

// mulAdd sets acc += [u]Q.
func (t *table) mulAdd(acc *nistec.P256Point, u *[32]byte) {
	var neg nistec.P256Point
	for i, d := range digits(u) {
		switch {
		case d > 0:
			acc.Add(acc, &t[i][d-1])
		case d < 0:
			acc.Add(acc, neg.Negate(&t[i][-d-1]))
		}
	}
}

// ellipticParams is P-256's parameters.
func ellipticParams() *elliptic.CurveParams { return elliptic.P256().Params() }
