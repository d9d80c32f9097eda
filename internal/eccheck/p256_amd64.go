//go:build amd64 && !purego

package eccheck

// The check on amd64, on the assembly of Go's own P-256 (p256_amd64.s,
// from filippo.io/nistec, the same code crypto/ecdsa runs). Through
// nistec's public API the check cost 30.5 µs here, this way 15.6
// (BenchmarkVerify; crypto/ecdsa.Verify 82): nistec's
// ScalarBaseMult is constant-time (a scan of every table entry per
// window), each Add also computes a doubling in case the points are
// equal, the table holds Jacobian points (a full addition each), and the
// result is made affine (a field inversion) to compare its x with r.
// Nothing in a verification is secret, so this file does what a
// variable-time verifier may: [u1]G from a table of G like Q's, tables of
// affine points added with the cheaper mixed addition, a doubling only
// when the sum says the points were equal, and the comparison of x with r
// as X = r·Z² (no inversion).

import (
	"math/big"
	"math/bits"
	"sync"
	"sync/atomic"
	"unsafe"
)

// element is a field or scalar element as four little-endian 64-bit
// limbs; field elements are in Montgomery form (times 2^256 mod p),
// fully reduced, as the assembly keeps them.
type element [4]uint64

// point is a point in Jacobian coordinates (x = X/Z², y = Y/Z³), Z = 0
// for the point at infinity: the layout of nistec's P256Point, which the
// assembly reads and writes.
type point struct{ x, y, z element }

// affine is a point in affine coordinates (x, y), never the point at
// infinity: the layout of nistec's p256AffinePoint.
type affine struct{ x, y element }

// fastTable holds [(j+1)·256^i]P for i < positions and j < half.
type fastTable [positions][half]affine

// tableBytes is what a fastTable holds.
const tableBytes = int(unsafe.Sizeof(fastTable{}))

// The declarations of the assembly functions are nistec's (Copyright
// 2022 The Go Authors, LICENSE.golang), with this file's types.

// Montgomery multiplication modulo p. Sets res = in1 * in2 * R⁻¹ mod p.
//
//go:noescape
func p256Mul(res, in1, in2 *element)

// Montgomery square, repeated n times (n >= 1).
//
//go:noescape
func p256Sqr(res, in *element, n int)

// Montgomery multiplication by R⁻¹, or 1 outside the domain.
// Sets res = in * R⁻¹, bringing res out of the Montgomery domain.
//
//go:noescape
func p256FromMont(res, in *element)

// Montgomery multiplication modulo ord(G). Sets res = in1 * in2 * R⁻¹.
//
//go:noescape
func p256OrdMul(res, in1, in2 *element)

// Point addition with an affine point and constant time conditions.
// If zero is 0, sets res = in2. If sel is 0, sets res = in1.
// If sign is not 0, sets res = in1 + -in2. Otherwise, sets res = in1 + in2
//
//go:noescape
func p256PointAddAffineAsm(res, in1 *point, in2 *affine, sign, sel, zero int)

// Point addition. Sets res = in1 + in2. Returns one if the two input points
// were equal and zero otherwise. If in1 or in2 are the point at infinity, res
// and the return value are undefined.
//
//go:noescape
func p256PointAddAsm(res, in1, in2 *point) int

// Point doubling. Sets res = in + in. in can be the point at infinity.
//
//go:noescape
func p256PointDoubleAsm(res, in *point)

// Constants, as limbs: p, n and p − n, and 2^512 mod p and n (RR: a Montgomery
// multiplication by it brings a value into the Montgomery domain).
var (
	fieldP, ordN, pMinusN, fieldRR, ordRR, fieldOne element
	// gTable is the table of the base point G, shared by every key,
	// built on first use.
	gTable     *fastTable
	gTableOnce sync.Once
)

func init() {
	c := ellipticParams()
	r512 := new(big.Int).Lsh(big.NewInt(1), 512)
	fieldP = limbs(c.P)
	ordN = limbs(c.N)
	pMinusN = limbs(new(big.Int).Sub(c.P, c.N))
	fieldRR = limbs(new(big.Int).Mod(r512, c.P))
	ordRR = limbs(new(big.Int).Mod(r512, c.N))
	fieldOne = limbs(new(big.Int).Mod(new(big.Int).Lsh(big.NewInt(1), 256), c.P))
}

// limbs returns x (0 ≤ x < 2^256) as little-endian limbs.
func limbs(x *big.Int) element {
	var b [32]byte
	x.FillBytes(b[:])
	return fromBytes(&b)
}

// fromBytes reads a 32-byte big-endian integer.
func fromBytes(b *[32]byte) element {
	var e element
	for i := range 4 {
		for j := range 8 {
			e[i] |= uint64(b[31-8*i-j]) << (8 * j)
		}
	}
	return e
}

// toBytes writes e as 32 big-endian bytes.
func toBytes(e *element) (b [32]byte) {
	for i := range 4 {
		for j := range 8 {
			b[31-8*i-j] = byte(e[i] >> (8 * j))
		}
	}
	return b
}

// sub returns x − y mod 2^256 and the borrow (1 when x < y).
func sub(x, y *element) (d element, borrow uint64) {
	d[0], borrow = bits.Sub64(x[0], y[0], 0)
	d[1], borrow = bits.Sub64(x[1], y[1], borrow)
	d[2], borrow = bits.Sub64(x[2], y[2], borrow)
	d[3], borrow = bits.Sub64(x[3], y[3], borrow)
	return d, borrow
}

// reduce subtracts m from x once if x ≥ m (x < 2m).
func reduce(x *element, m *element) {
	if d, borrow := sub(x, m); borrow == 0 {
		*x = d
	}
}

// pointFromBytes decodes an uncompressed point already known to be on
// the curve (NewVerifier checked it) into Montgomery Jacobian form.
func pointFromBytes(raw []byte) point {
	var p point
	p.x = fromBytes((*[32]byte)(raw[1:33]))
	p.y = fromBytes((*[32]byte)(raw[33:65]))
	p256Mul(&p.x, &p.x, &fieldRR)
	p256Mul(&p.y, &p.y, &fieldRR)
	p.z = fieldOne
	return p
}

// addAffine sets acc += ±q (−q when neg), exactly. The mixed addition's
// formula yields Z = 0 when acc = ±q: right (the point at infinity) for
// acc = −q; for acc = q the sum is 2·acc instead.
func addAffine(acc *point, q *affine, neg bool) {
	sign := 0
	if neg {
		sign = 1
	}
	if acc.z == (element{}) {
		// The assembly's zero flag: acc is infinity, the sum is ±q.
		p256PointAddAffineAsm(acc, acc, q, sign, 1, 0)
		return
	}
	var sum point
	p256PointAddAffineAsm(&sum, acc, q, sign, 1, 1)
	if sum.z == (element{}) && equalAffine(acc, q, neg) {
		p256PointDoubleAsm(&sum, acc)
	}
	*acc = sum
}

// equalAffine reports whether acc (not infinity) is ±q: X = x·Z² and
// Y = ±y·Z³ in Montgomery form.
func equalAffine(acc *point, q *affine, neg bool) bool {
	var z2, z3, t element
	p256Sqr(&z2, &acc.z, 1)
	p256Mul(&z3, &z2, &acc.z)
	if p256Mul(&t, &q.x, &z2); t != acc.x {
		return false
	}
	y := q.y
	if neg {
		y, _ = sub(&fieldP, &q.y) // y ≠ 0: no point of P-256 has order 2
	}
	p256Mul(&t, &y, &z3)
	return t == acc.y
}

// newFastTable computes the multiples of p in Jacobian coordinates, then
// makes them affine with one field inversion for all (Montgomery's
// trick: the inverse of the product, and products of the others).
func newFastTable(p point) *fastTable {
	var jac [positions][half]point
	base := p // 256^i · P
	for i := range positions {
		jac[i][0] = base
		for j := 1; j < half; j++ {
			if p256PointAddAsm(&jac[i][j], &jac[i][j-1], &base) == 1 {
				p256PointDoubleAsm(&jac[i][j], &base)
			}
		}
		// 256^(i+1)·P = 2·(128·256^i·P).
		if i+1 < positions {
			p256PointDoubleAsm(&base, &jac[i][half-1])
		}
	}
	// No entry is the point at infinity: each is [m]P with 0 < m < n.
	flat := jac[:]
	var prefix [positions * half]element
	acc := fieldOne
	for k := range positions * half {
		prefix[k] = acc
		p256Mul(&acc, &acc, &flat[k/half][k%half].z)
	}
	inv := fieldInverse(&acc)
	t := new(fastTable)
	for k := positions*half - 1; k >= 0; k-- {
		q := &flat[k/half][k%half]
		var zi, zi2, zi3 element
		p256Mul(&zi, &inv, &prefix[k]) // 1/Z_k
		p256Mul(&inv, &inv, &q.z)      // 1/(Z_0⋯Z_{k−1})
		p256Sqr(&zi2, &zi, 1)
		p256Mul(&zi3, &zi2, &zi)
		p256Mul(&t[k/half][k%half].x, &q.x, &zi2)
		p256Mul(&t[k/half][k%half].y, &q.y, &zi3)
	}
	return t
}

// fieldInverse returns a⁻¹ for a non-zero a, both in Montgomery form
// (with math/big: once per table, nothing secret).
func fieldInverse(a *element) element {
	var plain element
	p256FromMont(&plain, a)
	b := toBytes(&plain)
	x := new(big.Int).ModInverse(new(big.Int).SetBytes(b[:]), ellipticParams().P)
	r := limbs(x)
	p256Mul(&r, &r, &fieldRR)
	return r
}

// mulAddDigits sets acc += [u]P for the table's P, u given by its signed
// digits.
func (t *fastTable) mulAddDigits(acc *point, ds *[positions]int) {
	for i, d := range ds {
		switch {
		case d > 0:
			addAffine(acc, &t[i][d-1], false)
		case d < 0:
			addAffine(acc, &t[i][-d-1], true)
		}
	}
}

// prefetch reads the first and last word of each entry that mulAddDigits
// will add for ds, and returns them folded together so that the reads are
// not optimised away. The reads do not depend on each other, so the
// processor overlaps their cache misses, where the additions, each
// waiting for the one before, would take them one at a time: under load
// the HSM and the transport evict the tables (264 KiB each) between two
// checks. An entry is 64 bytes: one cache line, as Go's runtime places an
// object this large at the start of a page; the last word covers the
// second line should an entry ever straddle two.
func (t *fastTable) prefetch(ds *[positions]int) uint64 {
	var x uint64
	for i, d := range ds {
		if d < 0 {
			d = -d
		}
		if d != 0 {
			e := &t[i][d-1]
			x ^= e.x[0] ^ e.y[3]
		}
	}
	return x
}

// prefetched keeps prefetch's reads: it changes only if the folded words
// happen to equal a constant, which costs one predictable branch.
var prefetched atomic.Uint64

func newImpl(raw []byte) impl {
	gTableOnce.Do(func() {
		c := ellipticParams()
		var g [65]byte
		g[0] = 4
		c.Gx.FillBytes(g[1:33])
		c.Gy.FillBytes(g[33:65])
		gTable = newFastTable(pointFromBytes(g[:]))
	})
	return newFastTable(pointFromBytes(raw))
}

// verify is FIPS 186-5 §6.4.2: w = s⁻¹, u1 = e·w, u2 = r·w mod n,
// P = [u1]G + [u2]Q; valid when P is not infinity and x(P) mod n = r.
func (t *fastTable) verify(eb, rb, sb *[32]byte) bool {
	e, r := fromBytes(eb), fromBytes(rb)
	reduce(&e, &ordN) // e < 2^256 < 2n
	// s⁻¹ with math/big's extended Euclid: a third of the time of the
	// constant-time exponentiation crypto/ecdsa uses. Then w = s⁻¹·R.
	wi := new(big.Int).ModInverse(new(big.Int).SetBytes(sb[:]), n)
	if wi == nil {
		return false // unreachable: n is prime and 0 < s < n
	}
	w := limbs(wi)
	p256OrdMul(&w, &w, &ordRR)
	// A Montgomery product of a plain value and a Montgomery one is plain.
	var u1, u2 element
	p256OrdMul(&u1, &e, &w)
	p256OrdMul(&u2, &r, &w)
	reduce(&u1, &ordN)
	reduce(&u2, &ordN)
	b1, b2 := toBytes(&u1), toBytes(&u2)

	d1, d2 := digits(&b1), digits(&b2)
	if gTable.prefetch(&d1)^t.prefetch(&d2) == 0x5a5a5a5a5a5a5a5a {
		prefetched.Add(1)
	}
	var acc point // infinity
	gTable.mulAddDigits(&acc, &d1)
	t.mulAddDigits(&acc, &d2)
	if acc.z == (element{}) {
		return false
	}
	// x(P) = X/Z² ∈ [0, p) is ≡ r mod n exactly when it is r or, if
	// r + n < p, r + n. Compare X with c·Z² for those c, out of the
	// Montgomery domain (where every value is canonical).
	var z2, x element
	p256Sqr(&z2, &acc.z, 1)
	p256FromMont(&x, &acc.x)
	matches := func(c *element) bool {
		var cm, cz element
		p256Mul(&cm, c, &fieldRR) // c in Montgomery form
		p256Mul(&cz, &cm, &z2)
		p256FromMont(&cz, &cz)
		return cz == x
	}
	if matches(&r) {
		return true
	}
	if _, borrow := sub(&r, &pMinusN); borrow == 0 {
		return false // r + n ≥ p
	}
	var rn element // r + n < p < 2^256: no carry out
	var carry uint64
	rn[0], carry = bits.Add64(r[0], ordN[0], 0)
	rn[1], carry = bits.Add64(r[1], ordN[1], carry)
	rn[2], carry = bits.Add64(r[2], ordN[2], carry)
	rn[3], _ = bits.Add64(r[3], ordN[3], carry)
	return matches(&rn)
}
