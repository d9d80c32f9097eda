package edcheck

import (
	"math/big"
	"testing"

	"filippo.io/edwards25519"
	"filippo.io/edwards25519/field"
)

// bigMul computes [k]P by plain double-and-add over the bits of the
// integer k (not reduced mod ℓ, so it is right for points of any order),
// with edwards25519's exported Point.Add only: independent of both the
// table layouts.
func bigMul(p *edwards25519.Point, k *big.Int) *edwards25519.Point {
	r := edwards25519.NewIdentityPoint()
	for i := k.BitLen() - 1; i >= 0; i-- {
		r.Add(r, r)
		if k.Bit(i) == 1 {
			r.Add(r, p)
		}
	}
	return r
}

// TestTableEntriesIndependent checks that every entry t[i][j] is exactly
// [(j+1)·256^i]P, against a double-and-add that shares no code with
// newTable or newPointTable, for B, an ordinary key, its negation and a
// mixed-order point.
func TestTableEntriesIndependent(t *testing.T) {
	pts := tablePoints(t)[:4] // B, A, −A, A + a point of order 8
	if testing.Short() {
		pts = pts[:1]
	}
	for _, pt := range pts {
		nt := newTable(pt.p)
		for i := range positions {
			for j := range half {
				k := new(big.Int).Lsh(big.NewInt(int64(j+1)), uint(8*i))
				want := bigMul(pt.p, k)
				e := &nt[i][j]
				// Undo the Niels form: x = (y+x − (y−x))/2, y = (y+x + y−x)/2.
				var x, y, two, inv, xy2d field.Element
				two.Add(new(field.Element).One(), new(field.Element).One())
				inv.Invert(&two)
				x.Subtract(&e.YplusX, &e.YminusX)
				x.Multiply(&x, &inv)
				y.Add(&e.YplusX, &e.YminusX)
				y.Multiply(&y, &inv)
				xy2d.Multiply(&x, &y)
				xy2d.Multiply(&xy2d, d2)
				if xy2d.Equal(&e.XY2d) != 1 {
					t.Fatalf("P %s entry [%d][%d]: 2d·x·y inconsistent", pt.name, i, j)
				}
				var tt field.Element
				tt.Multiply(&x, &y)
				got, err := new(edwards25519.Point).SetExtendedCoordinates(&x, &y, new(field.Element).One(), &tt)
				if err != nil {
					t.Fatalf("P %s entry [%d][%d]: %v", pt.name, i, j, err)
				}
				if got.Equal(want) != 1 {
					t.Fatalf("P %s entry [%d][%d] is not [(j+1)·256^i]P", pt.name, i, j)
				}
			}
		}
	}
}
