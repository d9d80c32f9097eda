package edcheck

import (
	"unsafe"

	"filippo.io/edwards25519"
)

// positions is the number of radix-256 digits of a scalar: every scalar is
// below the group order, under 2^253, so 32 signed digits suffice (the top
// one at most 2^5 + 1).
const positions = 32

// half is the largest digit magnitude: digits are in [−128, 127], so a
// table needs the multiples 1..128 at each position.
const half = 128

// table holds [(j+1)·256^i]P for i < positions and j < half: 4,096 points
// (655 KiB). With it, [s]P is at most 32 additions or subtractions, one per
// nonzero signed digit of s, in variable time (every value here is
// public: the key, the signature and the message).
type table [positions][half]edwards25519.Point

// VerifierBytes is the memory a Verifier holds (its key's table), for
// callers that bound a cache of them.
const VerifierBytes = int(unsafe.Sizeof(table{}))

// newTable computes the multiples of p: 4,096 additions and 224
// doublings, about as much as 15 verifications, once per key.
func newTable(p *edwards25519.Point) *table {
	t := new(table)
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

// digits writes s (32 little-endian bytes, s < 2^253) in signed radix 256:
// s = Σ d_i·256^i with d_i in [−128, 127].
func digits(s []byte) [positions]int16 {
	var d [positions]int16
	carry := int16(0)
	for i := range positions {
		v := int16(s[i]) + carry
		carry = 0
		if v >= half {
			v -= 256
			carry = 1
		}
		d[i] = v
	}
	// s < 2^253 makes the last byte at most 31, so the last digit takes
	// the final carry without overflowing: carry is 0 here.
	return d
}

// mulAdd sets acc += [s]P for the point P whose table t is, s given by its
// signed digits.
func (t *table) mulAdd(acc *edwards25519.Point, d *[positions]int16) {
	for i, v := range d {
		switch {
		case v > 0:
			acc.Add(acc, &t[i][v-1])
		case v < 0:
			acc.Subtract(acc, &t[i][-v-1])
		}
	}
}
