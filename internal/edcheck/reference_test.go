package edcheck

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha512"
	"sync"

	"filippo.io/edwards25519"
)

// pointTable is the table as it was before the affine Niels form: the
// same multiples as edwards25519.Points, summed with Point.Add. It is
// kept only as the reference the new arithmetic is held to
// (muladd_test.go), being the straightforward use of edwards25519's
// exported, complete addition.
type pointTable [positions][half]edwards25519.Point

func newPointTable(p *edwards25519.Point) *pointTable {
	t := new(pointTable)
	base := new(edwards25519.Point).Set(p) // 256^i · p
	for i := range positions {
		t[i][0].Set(base)
		for j := 1; j < half; j++ {
			t[i][j].Add(&t[i][j-1], base)
		}
		// 256^(i+1)·p = 2·(128·256^i·p).
		base.Add(&t[i][half-1], &t[i][half-1])
	}
	return t
}

// mulAdd sets acc += [s]P for the point P whose table t is, s given by its
// signed digits.
func (t *pointTable) mulAdd(acc *edwards25519.Point, d *[positions]int16) {
	for i, v := range d {
		switch {
		case v > 0:
			acc.Add(acc, &t[i][v-1])
		case v < 0:
			acc.Subtract(acc, &t[i][-v-1])
		}
	}
}

var refBase = sync.OnceValue(func() *pointTable { return newPointTable(edwards25519.NewGeneratorPoint()) })

// refVerifier is Verifier as it was on pointTable: the reference the new
// Verify must agree with on every input (as well as with crypto/ed25519).
type refVerifier struct {
	pub    []byte
	negKey *pointTable
}

func newRefVerifier(pub []byte) (*refVerifier, error) {
	a, err := new(edwards25519.Point).SetBytes(pub)
	if err != nil {
		return nil, err
	}
	return &refVerifier{pub: bytes.Clone(pub), negKey: newPointTable(new(edwards25519.Point).Negate(a))}, nil
}

func (v *refVerifier) Verify(msg, sig []byte) bool {
	if len(sig) != ed25519.SignatureSize || sig[63]&224 != 0 {
		return false
	}
	s, err := edwards25519.NewScalar().SetCanonicalBytes(sig[32:])
	if err != nil {
		return false
	}
	h := sha512.New()
	h.Write(sig[:32])
	h.Write(v.pub)
	h.Write(msg)
	k, err := edwards25519.NewScalar().SetUniformBytes(h.Sum(nil))
	if err != nil {
		return false
	}
	sd, kd := digits(s.Bytes()), digits(k.Bytes())
	r := edwards25519.NewIdentityPoint()
	refBase().mulAdd(r, &sd)
	v.negKey.mulAdd(r, &kd)
	return bytes.Equal(sig[:32], r.Bytes())
}
