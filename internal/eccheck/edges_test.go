package eccheck

// Edge-case tests written by an independent review of this package: the
// table multiplication against nistec's ScalarMult, and signatures built
// for chosen u1 and u2, which random signatures almost never reach.

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"math/big"
	mrand "math/rand/v2"
	"testing"

	"filippo.io/nistec"
)

var patternBytes = []byte{0x00, 0x01, 0x7e, 0x7f, 0x80, 0x81, 0xfe, 0xff}

// adversarial returns scalars below n made of edge bytes.
func adversarial(rng *mrand.Rand, count int) []*big.Int {
	var out []*big.Int
	add := func(x *big.Int) {
		x = new(big.Int).Mod(x, n)
		out = append(out, x)
	}
	one := big.NewInt(1)
	for _, b := range patternBytes {
		buf := make([]byte, 32)
		for i := range buf {
			buf[i] = b
		}
		add(new(big.Int).SetBytes(buf))
		// with the top byte lowered so it is < n without reduction
		buf[0] = 0x7f
		add(new(big.Int).SetBytes(buf))
	}
	for k := int64(0); k < 300; k++ {
		add(new(big.Int).Sub(n, big.NewInt(k+1)))
		add(big.NewInt(k))
		add(new(big.Int).Lsh(one, uint(k%256)))
		add(new(big.Int).Sub(new(big.Int).Lsh(one, uint(k%256)), one))
	}
	// n-1 with trailing bytes forced to 0xff/0x80 etc.
	for _, b := range patternBytes {
		nb := new(big.Int).Sub(n, one).FillBytes(make([]byte, 32))
		for j := 31; j >= 8; j-- {
			nb[j] = b
			add(new(big.Int).SetBytes(nb))
		}
	}
	for range count {
		buf := make([]byte, 32)
		for i := range buf {
			buf[i] = patternBytes[rng.IntN(len(patternBytes))]
		}
		add(new(big.Int).SetBytes(buf))
	}
	return out
}

// TestMulAddDirect compares the table multiplication of each
// implementation (mulAdders) with nistec's ScalarMult on scalars made of
// the bytes where signed recoding carries (0x7f/0x80, 0xff), near n and
// at powers of two, into an empty accumulator, into [u]Q (the doubling
// case of an addition) and into −[u]Q (the point at infinity).
func TestMulAddDirect(t *testing.T) {
	rng := mrand.New(mrand.NewPCG(1, 2))
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := k.PublicKey.Bytes()
	q, _ := nistec.NewP256Point().SetBytes(raw)
	us := adversarial(rng, 1000)
	for name, mulAdd := range mulAdders(raw) {
		t.Run(name, func(t *testing.T) {
			for _, u := range us {
				var b [32]byte
				u.FillBytes(b[:])
				want, err := nistec.NewP256Point().ScalarMult(q, b[:])
				if err != nil {
					t.Fatal(err)
				}
				if got := mulAdd(nistec.NewP256Point(), &b); got.Equal(want) != 1 {
					t.Fatalf("mulAdd(%x) wrong", b)
				}
				// acc = [u]Q too (the doubling case), and acc = −[u]Q.
				w2 := nistec.NewP256Point().Add(want, want)
				if got := mulAdd(nistec.NewP256Point().Set(want), &b); got.Equal(w2) != 1 {
					t.Fatalf("mulAdd doubling case (%x) wrong", b)
				}
				if got := mulAdd(nistec.NewP256Point().Negate(want), &b); got.IsInfinity() != 1 {
					t.Fatalf("mulAdd cancel case (%x) wrong", b)
				}
			}
		})
	}
}

// genericMulAdd is the generic table's multiplication, as a function of
// nistec points.
func genericMulAdd(raw []byte) func(acc *nistec.P256Point, u *[32]byte) *nistec.P256Point {
	t := newTable(raw)
	return func(acc *nistec.P256Point, u *[32]byte) *nistec.P256Point {
		t.mulAdd(acc, u)
		return acc
	}
}

func hashOf(e *big.Int) []byte { return e.FillBytes(make([]byte, 32)) }

// TestForcedScalars builds valid signatures for chosen u1 and u2 (the same
// edge scalars; u1 = 0 every fifth) and compares both verifiers on them
// and on a longer digest, r+1 and e+n.
func TestForcedScalars(t *testing.T) {
	rng := mrand.New(mrand.NewPCG(3, 4))
	c := elliptic.P256()
	for range 1 {
		k, err := ecdsa.GenerateKey(c, rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		v, _ := NewVerifier(&k.PublicKey)
		pub := &k.PublicKey
		us := adversarial(rng, 200)
		valid := 0
		for i, u2 := range us {
			if u2.Sign() == 0 {
				continue
			}
			u1 := us[(i*7+3)%len(us)]
			if i%5 == 0 {
				u1 = big.NewInt(0)
			}
			// R = u1 G + u2 Q
			x1, y1 := c.ScalarBaseMult(u1.FillBytes(make([]byte, 32)))
			x2, y2 := c.ScalarMult(pub.X, pub.Y, u2.FillBytes(make([]byte, 32)))
			rx, _ := c.Add(x1, y1, x2, y2)
			r := new(big.Int).Mod(rx, n)
			if r.Sign() == 0 {
				continue
			}
			// s = r / u2, e = u1 * s
			s := new(big.Int).Mul(r, new(big.Int).ModInverse(u2, n))
			s.Mod(s, n)
			e := new(big.Int).Mul(u1, s)
			e.Mod(e, n)
			h := hashOf(e)
			if same(t, "forced", v, pub, h, r, s) {
				valid++
			}
			// variants: e+n as 33+ bytes hash (truncation), r perturbed
			long := append(h, 0xde, 0xad)
			same(t, "forced long hash", v, pub, long, r, s)
			same(t, "forced r+1", v, pub, h, new(big.Int).Add(r, big.NewInt(1)), s)
			// e + n fits in 32 bytes when e < 2^256 - n
			en := new(big.Int).Add(e, n)
			if en.BitLen() <= 256 {
				same(t, "forced e+n", v, pub, hashOf(en), r, s)
			}
		}
		if valid < len(us)/2 {
			t.Fatalf("only %d valid of %d", valid, len(us))
		}
		t.Logf("%d forced valid signatures", valid)
	}
}

// TestInfinity: signatures for which [u1]G + [u2]Q is the point at
// infinity are refused by both.
func TestInfinity(t *testing.T) {
	k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	v, _ := NewVerifier(&k.PublicKey)
	for range 200 {
		r := randN()
		s := randN()
		if r.Sign() == 0 || s.Sign() == 0 {
			continue
		}
		w := new(big.Int).ModInverse(s, n)
		u2 := new(big.Int).Mul(r, w)
		u2.Mod(u2, n)
		// u1 = -u2 d
		u1 := new(big.Int).Mul(u2, k.D)
		u1.Neg(u1).Mod(u1, n)
		e := new(big.Int).Mul(u1, s)
		e.Mod(e, n)
		same(t, "infinity", v, &k.PublicKey, hashOf(e), r, s)
	}
}

func randN() *big.Int {
	x, err := rand.Int(rand.Reader, n)
	if err != nil {
		panic(err)
	}
	return x
}
