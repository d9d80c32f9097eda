package edcheck

import (
	"math/big"

	"filippo.io/edwards25519/field"
)

// The point arithmetic of the check, on filippo.io/edwards25519/field
// rather than on edwards25519.Point: Point.Add takes both operands in
// extended form, so every addition re-derives the table entry's cached
// form (a multiplication and two field additions), checks both operands
// for initialisation (a third of the old mulAdd's time in a profile of the
// daemon), and multiplies by a Z that an affine entry does not have. The
// formulas are filippo.io/edwards25519's own (its unexported
// projP1xP1.AddAffine, SubAffine, Double and Point.fromP1xP1, from ref10's
// ge_madd, ge_msub and ge_p2_dbl), so the check adds with the same
// complete addition law as crypto/ed25519: it holds for every pair of
// curve points, small-order ones included, which is what lets a sum of
// table entries land on the very point crypto/ed25519 computes by
// doubling.

// extended is a point in extended coordinates (X:Y:Z:T): x = X/Z,
// y = Y/Z, xy = T/Z. It is the accumulator of a check.
type extended struct {
	X, Y, Z, T field.Element
}

// completed is a point as ((X:Z), (Y:T)): x = X/Z, y = Y/T. An addition
// ends here, before the four multiplications back to extended form.
type completed struct {
	X, Y, Z, T field.Element
}

// d2 is 2d, d = −121665/121666 the constant of the curve equation
// −x² + y² = 1 + d·x²·y² (RFC 8032, section 5.1), computed from its
// definition rather than copied as 32 bytes.
var d2 = func() *field.Element {
	var num, den, d field.Element
	num.Negate(new(field.Element).Mult32(new(field.Element).One(), 121665))
	den.Invert(new(field.Element).Mult32(new(field.Element).One(), 121666))
	d.Multiply(&num, &den)
	return d.Add(&d, &d)
}()

// identity sets p to the neutral element (0:1:1:0).
func (p *extended) identity() *extended {
	p.X.Zero()
	p.Y.One()
	p.Z.One()
	p.T.Zero()
	return p
}

// addNiels sets c = p + q: three multiplications, where Point.Add's cached
// operand would need a fourth for its Z and a fifth to make 2d·T.
func (c *completed) addNiels(p *extended, q *niels) *completed {
	var yPlusX, yMinusX, pp, mm, tt2d, z2 field.Element
	yPlusX.Add(&p.Y, &p.X)
	yMinusX.Subtract(&p.Y, &p.X)
	pp.Multiply(&yPlusX, &q.YplusX)
	mm.Multiply(&yMinusX, &q.YminusX)
	tt2d.Multiply(&p.T, &q.XY2d)
	z2.Add(&p.Z, &p.Z)
	c.X.Subtract(&pp, &mm)
	c.Y.Add(&pp, &mm)
	c.Z.Add(&z2, &tt2d)
	c.T.Subtract(&z2, &tt2d)
	return c
}

// subNiels sets c = p − q. −q is q with y+x and y−x swapped and 2d·x·y
// negated, so the table holds only the positive multiples.
func (c *completed) subNiels(p *extended, q *niels) *completed {
	var yPlusX, yMinusX, pp, mm, tt2d, z2 field.Element
	yPlusX.Add(&p.Y, &p.X)
	yMinusX.Subtract(&p.Y, &p.X)
	pp.Multiply(&yPlusX, &q.YminusX)
	mm.Multiply(&yMinusX, &q.YplusX)
	tt2d.Multiply(&p.T, &q.XY2d)
	z2.Add(&p.Z, &p.Z)
	c.X.Subtract(&pp, &mm)
	c.Y.Add(&pp, &mm)
	c.Z.Subtract(&z2, &tt2d)
	c.T.Add(&z2, &tt2d)
	return c
}

// double sets c = 2p. Only table building doubles (once per digit
// position), and it needs no T, so this is the projective doubling.
func (c *completed) double(p *extended) *completed {
	var xx, yy, zz2, xPlusYSq field.Element
	xx.Square(&p.X)
	yy.Square(&p.Y)
	zz2.Square(&p.Z)
	zz2.Add(&zz2, &zz2)
	xPlusYSq.Add(&p.X, &p.Y)
	xPlusYSq.Square(&xPlusYSq)
	c.Y.Add(&yy, &xx)
	c.Z.Subtract(&yy, &xx)
	c.X.Subtract(&xPlusYSq, &c.Y)
	c.T.Subtract(&zz2, &c.Z)
	return c
}

// fromCompleted sets p = c.
func (p *extended) fromCompleted(c *completed) *extended {
	p.X.Multiply(&c.X, &c.T)
	p.Y.Multiply(&c.Y, &c.Z)
	p.Z.Multiply(&c.Z, &c.T)
	p.T.Multiply(&c.X, &c.Y)
	return p
}

// bytes writes the canonical encoding of p (RFC 8032, section 5.1.2: y
// reduced mod p, the sign of x in the top bit), exactly as
// edwards25519.Point.Bytes does: the check compares these bytes with the
// signature's R, so they must be the bytes crypto/ed25519 compares.
func (p *extended) bytes(out *[32]byte) []byte {
	var zInv, x, y field.Element
	invertVarTime(&zInv, &p.Z)
	x.Multiply(&p.X, &zInv)
	y.Multiply(&p.Y, &zInv)
	copy(out[:], y.Bytes())
	out[31] |= byte(x.IsNegative() << 7)
	return out[:]
}

// fieldP is 2^255 − 19.
var fieldP = new(big.Int).Sub(new(big.Int).Lsh(big.NewInt(1), 255), big.NewInt(19))

// invertVarTime sets v = 1/z (0 for z = 0, as field.Element.Invert) with
// math/big's extended Euclid: 1.6 µs here against 4.0 for Invert's
// constant-time exponentiation, a sixth of a check. Nothing in a
// verification is secret.
func invertVarTime(v, z *field.Element) {
	var be [32]byte
	le := z.Bytes()
	for i := range be {
		be[i] = le[31-i]
	}
	x := new(big.Int).SetBytes(be[:])
	if x.ModInverse(x, fieldP) == nil { // z = 0
		v.Zero()
		return
	}
	x.FillBytes(be[:])
	for i := range 16 {
		be[i], be[31-i] = be[31-i], be[i]
	}
	if _, err := v.SetBytes(be[:]); err != nil {
		panic("edcheck: " + err.Error()) // unreachable: 32 bytes
	}
}
