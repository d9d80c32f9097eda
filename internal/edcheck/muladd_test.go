package edcheck

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"fmt"
	"math/big"
	mrand "math/rand/v2"
	"testing"

	"filippo.io/edwards25519"
	"filippo.io/edwards25519/field"
)

// nonCanonical are encodings of small-order points that are not
// canonical but that edwards25519 (and so crypto/ed25519) decodes: y
// not reduced mod p, or x = 0 with the sign bit set.
var nonCanonical = []string{
	"eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f", // y = 1 + p: the identity
	"eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff", // y = 1 + p, sign set: the identity
	"edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f", // y = p: order 4
	"edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff", // y = p, sign set: order 4
	"0100000000000000000000000000000000000000000000000000000000000080", // the identity, x = 0 with sign set
	"ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff", // order 2, x = 0 with sign set
}

type namedPoint struct {
	name string
	p    *edwards25519.Point
}

// tablePoints are the points whose tables are held to the reference: B,
// an ordinary key and its negation (what Verifier tabulates), every
// small-order point, a mixed-order point, and the points behind the
// non-canonical encodings.
func tablePoints(t *testing.T) []namedPoint {
	t.Helper()
	pub, _, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	a, err := new(edwards25519.Point).SetBytes(pub)
	if err != nil {
		t.Fatal(err)
	}
	order8, err := new(edwards25519.Point).SetBytes(mustHex(t, smallOrder[4]))
	if err != nil {
		t.Fatal(err)
	}
	pts := []namedPoint{
		{"B", edwards25519.NewGeneratorPoint()},
		{"A", a},
		{"-A", new(edwards25519.Point).Negate(a)},
		{"A+T8", new(edwards25519.Point).Add(a, order8)},
	}
	for _, enc := range append(append([]string(nil), smallOrder...), nonCanonical...) {
		p, err := new(edwards25519.Point).SetBytes(mustHex(t, enc))
		if err != nil {
			t.Fatalf("%s does not decode: %v", enc, err)
		}
		pts = append(pts, namedPoint{enc, p})
	}
	return pts
}

type namedScalar struct {
	name string
	s    [32]byte // little-endian, below 2^253 (what digits takes)
}

func fill(lo, top byte) (s [32]byte) {
	for i := range s {
		s[i] = lo
	}
	s[31] = top
	return s
}

func fromInt(x *big.Int) (s [32]byte) {
	copy(s[:], scalarLE(x))
	return s
}

// edgeScalars are the scalars where signed radix-256 digits turn over:
// zero, one, the top of the range (ℓ − 1, 2^253 − 1), digits at ±128/127
// at every position, and the patterns that carry through every digit.
func edgeScalars() []namedScalar {
	lMinus := func(k int64) *big.Int { return new(big.Int).Sub(groupOrder, big.NewInt(k)) }
	two253 := new(big.Int).Lsh(big.NewInt(1), 253)
	ss := []namedScalar{
		{"0", fromInt(big.NewInt(0))},
		{"1", fromInt(big.NewInt(1))},
		{"2", fromInt(big.NewInt(2))},
		{"127", fromInt(big.NewInt(127))},
		{"128", fromInt(big.NewInt(128))},
		{"129", fromInt(big.NewInt(129))},
		{"255", fromInt(big.NewInt(255))},
		{"256", fromInt(big.NewInt(256))},
		{"l-1", fromInt(lMinus(1))},
		{"l-2", fromInt(lMinus(2))},
		{"l-128", fromInt(lMinus(128))},
		{"2^252", fromInt(new(big.Int).Lsh(big.NewInt(1), 252))},
		{"2^253-1", fromInt(new(big.Int).Sub(two253, big.NewInt(1)))},
		{"all 0x80", fill(0x80, 0x10)},
		{"all 0x80, top 0", fill(0x80, 0)},
		{"all 0x7f", fill(0x7f, 0x0f)},
		{"all 0x81", fill(0x81, 0x10)},
		{"all 0xff", fill(0xff, 0x1f)},
	}
	alt := fill(0x80, 0x10)
	for i := 1; i < 31; i += 2 {
		alt[i] = 0x7f
	}
	ss = append(ss, namedScalar{"0x80, 0x7f alternating", alt})
	for i := range positions {
		for _, b := range []byte{0x7f, 0x80, 0xff} {
			if i == positions-1 && b > 0x1f {
				continue
			}
			var s [32]byte
			s[i] = b
			ss = append(ss, namedScalar{fmt.Sprintf("byte %d = %#x", i, b), s})
		}
	}
	return ss
}

// randomScalars are n scalars below ℓ and n below 2^253.
func randomScalars(t *testing.T, n int) []namedScalar {
	t.Helper()
	rng := mrand.New(mrand.NewPCG(5, 6))
	var ss []namedScalar
	for range n {
		var s namedScalar
		copy(s.s[:], randScalar(t).Bytes())
		s.name = "random below l"
		ss = append(ss, s)
		for i := range s.s {
			s.s[i] = byte(rng.Uint32())
		}
		s.s[31] &= 0x1f
		s.name = "random below 2^253"
		ss = append(ss, s)
	}
	return ss
}

func encode(p *extended) []byte {
	var b [32]byte
	return bytes.Clone(p.bytes(&b))
}

// TestMulAddMatchesPointTable holds the affine Niels tables and their
// mixed additions to the Point-based tables they replace: the encoding of
// [s]P, and of [s']B + [s]P accumulated as Verify accumulates, must be
// the same bytes for every point and scalar.
func TestMulAddMatchesPointTable(t *testing.T) {
	n := 100
	if testing.Short() {
		n = 20
	}
	scalars := append(edgeScalars(), randomScalars(t, n)...)
	base := base()
	for _, pt := range tablePoints(t) {
		nt, rt := newTable(pt.p), newPointTable(pt.p)
		for i, sc := range scalars {
			d := digits(sc.s[:])
			d2 := digits(scalars[(i+1)%len(scalars)].s[:])

			var acc extended
			acc.identity()
			nt.mulAdd(&acc, &d)
			ref := edwards25519.NewIdentityPoint()
			rt.mulAdd(ref, &d)
			if got, want := encode(&acc), ref.Bytes(); !bytes.Equal(got, want) {
				t.Fatalf("P %s, s %s (%x): [s]P encodes to %x, reference %x", pt.name, sc.name, sc.s, got, want)
			}

			acc.identity()
			base.mulAdd(&acc, &d2)
			nt.mulAdd(&acc, &d)
			ref = edwards25519.NewIdentityPoint()
			refBase().mulAdd(ref, &d2)
			rt.mulAdd(ref, &d)
			if got, want := encode(&acc), ref.Bytes(); !bytes.Equal(got, want) {
				t.Fatalf("P %s, s %s (%x): [s']B + [s]P encodes to %x, reference %x", pt.name, sc.name, sc.s, got, want)
			}
		}
	}
}

// TestTableEntries checks every entry of the tables, added and
// subtracted, against the reference's: one nonzero digit selects one
// entry. The sums are compared as points (and each must be on the
// curve, with T consistent, or SetExtendedCoordinates refuses it), which
// is far cheaper than encoding 8,192 of them.
func TestTableEntries(t *testing.T) {
	pts := tablePoints(t)
	if testing.Short() {
		pts = pts[:2]
	}
	for _, pt := range pts {
		nt, rt := newTable(pt.p), newPointTable(pt.p)
		for i := range positions {
			for v := -half; v <= half; v++ {
				if v == 0 {
					continue
				}
				var d [positions]int16
				d[i] = int16(v)
				var acc extended
				acc.identity()
				nt.mulAdd(&acc, &d)
				got, err := new(edwards25519.Point).SetExtendedCoordinates(&acc.X, &acc.Y, &acc.Z, &acc.T)
				if err != nil {
					t.Fatalf("P %s, digit %d at %d: %v", pt.name, v, i, err)
				}
				ref := edwards25519.NewIdentityPoint()
				rt.mulAdd(ref, &d)
				if got.Equal(ref) != 1 {
					t.Fatalf("P %s, digit %d at %d: the entry differs from the reference", pt.name, v, i)
				}
			}
		}
	}
}

// TestD2 checks the curve constant against points edwards25519 computes:
// 2·(y² − x² − 1) = 2d·x²·y² on the curve.
func TestD2(t *testing.T) {
	pts := []*edwards25519.Point{edwards25519.NewGeneratorPoint()}
	for range 8 {
		pts = append(pts, new(edwards25519.Point).ScalarBaseMult(randScalar(t)))
	}
	for _, p := range pts {
		X, Y, Z, _ := p.ExtendedCoordinates()
		zInv := new(field.Element).Invert(Z)
		x := new(field.Element).Multiply(X, zInv)
		y := new(field.Element).Multiply(Y, zInv)
		xx, yy := new(field.Element).Square(x), new(field.Element).Square(y)
		lhs := new(field.Element).Subtract(yy, xx)
		lhs.Subtract(lhs, new(field.Element).One())
		lhs.Add(lhs, lhs)
		rhs := new(field.Element).Multiply(d2, xx)
		rhs.Multiply(rhs, yy)
		if lhs.Equal(rhs) != 1 {
			t.Fatalf("%x is not on the curve with this 2d", p.Bytes())
		}
	}
}

// TestVerifyEdgeEncodings checks Verify against the Point-based reference
// and crypto/ed25519 for every pairing of a key and an R among the
// identity, small-order, mixed-order and non-canonical encodings (and an
// ordinary key with its valid signature), with S at 0, 1, ℓ − 1 and the
// valid S.
func TestVerifyEdgeEncodings(t *testing.T) {
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	msg := []byte("edge encodings")
	sig := ed25519.Sign(priv, msg)
	a, _ := new(edwards25519.Point).SetBytes(pub)
	order8, _ := new(edwards25519.Point).SetBytes(mustHex(t, smallOrder[4]))
	mixed := new(edwards25519.Point).Add(a, order8).Bytes()

	encs := [][]byte{pub, mixed}
	for _, e := range append(append([]string(nil), smallOrder...), nonCanonical...) {
		encs = append(encs, mustHex(t, e))
	}
	rs := append([][]byte{sig[:32]}, encs...)
	lMinus1 := scalarLE(new(big.Int).Sub(groupOrder, big.NewInt(1)))
	ss := [][]byte{make([]byte, 32), scalarLE(big.NewInt(1)), lMinus1, sig[32:]}

	var accepted int
	for _, key := range encs {
		v, err := NewVerifier(key)
		if err != nil {
			t.Fatalf("key %x: %v", key, err)
		}
		ref, err := newRefVerifier(key)
		if err != nil {
			t.Fatalf("key %x: %v", key, err)
		}
		for _, r := range rs {
			for _, s := range ss {
				for _, m := range [][]byte{msg, nil} {
					sg := append(bytes.Clone(r), s...)
					got, want, std := v.Verify(m, sg), ref.Verify(m, sg), ed25519.Verify(key, m, sg)
					if got != want || got != std {
						t.Fatalf("key %x msg %q sig %x: Verify = %v, reference = %v, crypto/ed25519 = %v", key, m, sg, got, want, std)
					}
					if got {
						accepted++
					}
				}
			}
		}
	}
	if accepted < 2 {
		t.Fatalf("only %d signatures accepted: the test does not reach acceptance", accepted)
	}
	t.Logf("%d accepted", accepted)
}
