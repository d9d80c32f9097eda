package edcheck

import "filippo.io/edwards25519/field"

// niels is a point in affine Niels form (y+x, y−x, 2d·x·y): the second
// operand of addNiels and subNiels, precomputed once per table entry so
// that an addition in a check multiplies by it directly. Three field
// elements where an edwards25519.Point holds four (its Z is 1 here).
type niels struct {
	YplusX, YminusX, XY2d field.Element
}

// toNiels sets dst[i] to src[i] in affine Niels form, with one field
// inversion for the whole slice (Montgomery's trick: three
// multiplications per point instead of an inversion of ~265 each). prod
// is scratch of len(src). Every Z is nonzero (the addition law is
// complete, so no curve point has Z = 0), so no factor zeroes the
// product.
func toNiels(dst []niels, src []extended, prod []field.Element) {
	prod[0] = src[0].Z
	for i := 1; i < len(src); i++ {
		prod[i].Multiply(&prod[i-1], &src[i].Z)
	}
	var inv, zInv field.Element
	inv.Invert(&prod[len(src)-1]) // 1/(Z_0 ⋯ Z_{n−1})
	for i := len(src) - 1; i > 0; i-- {
		zInv.Multiply(&inv, &prod[i-1]) // 1/Z_i
		inv.Multiply(&inv, &src[i].Z)   // 1/(Z_0 ⋯ Z_{i−1})
		dst[i].set(&src[i], &zInv)
	}
	dst[0].set(&src[0], &inv)
}

// set sets n = p, given zInv = 1/Z (edwards25519's affineCached.FromP3).
func (n *niels) set(p *extended, zInv *field.Element) {
	n.YplusX.Add(&p.Y, &p.X)
	n.YplusX.Multiply(&n.YplusX, zInv)
	n.YminusX.Subtract(&p.Y, &p.X)
	n.YminusX.Multiply(&n.YminusX, zInv)
	n.XY2d.Multiply(&p.T, d2)
	n.XY2d.Multiply(&n.XY2d, zInv)
}
