//go:build amd64 && !purego

package eccheck

import (
	"math/big"

	"filippo.io/nistec"
)

// mulAdders are the table multiplications to test: the generic one and
// the assembly one, each as a function of nistec points.
func mulAdders(raw []byte) map[string]func(acc *nistec.P256Point, u *[32]byte) *nistec.P256Point {
	t := newFastTable(pointFromBytes(raw))
	return map[string]func(*nistec.P256Point, *[32]byte) *nistec.P256Point{
		"generic": genericMulAdd(raw),
		"amd64": func(acc *nistec.P256Point, u *[32]byte) *nistec.P256Point {
			p, d := fromNistec(acc), digits(u)
			t.mulAddDigits(&p, &d)
			return toNistec(&p)
		},
	}
}

// fromNistec converts through the affine encoding.
func fromNistec(q *nistec.P256Point) point {
	if q.IsInfinity() == 1 {
		return point{}
	}
	return pointFromBytes(q.Bytes())
}

// toNistec makes p affine with math/big (x = X/Z², y = Y/Z³) and decodes
// it with nistec, which checks it is on the curve.
func toNistec(p *point) *nistec.P256Point {
	if p.z == (element{}) {
		return nistec.NewP256Point()
	}
	c := ellipticParams()
	plain := func(e *element) *big.Int {
		var o element
		p256FromMont(&o, e)
		b := toBytes(&o)
		return new(big.Int).SetBytes(b[:])
	}
	zi := new(big.Int).ModInverse(plain(&p.z), c.P)
	zi2 := new(big.Int).Mul(zi, zi)
	x := new(big.Int).Mul(plain(&p.x), zi2)
	y := new(big.Int).Mul(plain(&p.y), zi2.Mul(zi2, zi))
	var raw [65]byte
	raw[0] = 4
	x.Mod(x, c.P).FillBytes(raw[1:33])
	y.Mod(y, c.P).FillBytes(raw[33:65])
	q, err := nistec.NewP256Point().SetBytes(raw[:])
	if err != nil {
		panic("not a point: " + err.Error())
	}
	return q
}
