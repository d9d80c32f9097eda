package edcheck

import (
	"sync/atomic"
	"unsafe"

	"filippo.io/edwards25519"
	"filippo.io/edwards25519/field"
)

// positions is the number of radix-256 digits of a scalar: every scalar is
// below the group order, under 2^253, so 32 signed digits suffice (the top
// one at most 2^5 + 1).
const positions = 32

// half is the largest digit magnitude: digits are in [−128, 127], so a
// table needs the multiples 1..128 at each position.
const half = 128

// table holds [(j+1)·256^i]P for i < positions and j < half, in affine
// Niels form: 4,096 entries of 120 bytes (480 KiB). With it, [s]P is at
// most 32 mixed additions or subtractions (seven field multiplications
// each), one per nonzero signed digit of s, in variable time (every value
// here is public: the key, the signature and the message).
type table [positions][half]niels

// VerifierBytes is the memory a Verifier holds (its key's table), for
// callers that bound a cache of them.
const VerifierBytes = int(unsafe.Sizeof(table{}))

// newTable computes the multiples of p: per position, 127 mixed additions
// of 256^i·p, one doubling to the next position's 256^(i+1)·p, and one
// field inversion (shared by the position's 128 entries and the next
// position's base) to make the entries affine; one more inversion makes p
// itself affine. The affine form makes a table dearer to build than
// edwards25519.Points were (~1.8 ms, about 1.4× their CPU, as much as 25
// crypto/ed25519 verifications): paid once per key, for two
// multiplications fewer in each of a check's 64 additions.
func newTable(p *edwards25519.Point) *table {
	t := new(table)
	row := new([half + 1]extended) // row[j] = (j+1)·256^i·p, row[half] = 256^(i+1)·p
	rowNiels := new([half + 1]niels)
	prod := new([half + 1]field.Element)

	X, Y, Z, T := p.ExtendedCoordinates()
	row[half] = extended{X: *X, Y: *Y, Z: *Z, T: *T}
	toNiels(rowNiels[half:], row[half:], prod[:1])

	var c completed
	for i := range positions {
		base := &rowNiels[half] // 256^i·p, from the previous position
		row[0] = row[half]
		for j := 1; j < half; j++ {
			row[j].fromCompleted(c.addNiels(&row[j-1], base))
		}
		// 256^(i+1)·p = 2·(128·256^i·p): made affine with this position's
		// entries rather than by an inversion of its own (the last
		// position computes it for nothing).
		row[half].fromCompleted(c.double(&row[half-1]))
		toNiels(rowNiels[:], row[:], prod[:])
		copy(t[i][:], rowNiels[:half])
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
func (t *table) mulAdd(acc *extended, d *[positions]int16) {
	var c completed
	for i, v := range d {
		switch {
		case v > 0:
			acc.fromCompleted(c.addNiels(acc, &t[i][v-1]))
		case v < 0:
			acc.fromCompleted(c.subNiels(acc, &t[i][-v-1]))
		}
	}
}

// prefetch reads one word of every cache line of the entries that mulAdd
// will add for d, and returns them folded together so that the reads are
// not optimised away. The reads do not depend on each other, so the
// processor overlaps their cache misses, where mulAdd's additions, each
// waiting for the one before, would take them one at a time. Under load
// the HSM, the transport and the other keys' checks evict the tables
// (480 KiB each) between two checks: in a profile of the daemon signing
// at full speed, the first read of each entry was a quarter of the
// check's time. An entry is 120 bytes, so words 48 bytes apart from its
// first to its last touch every line it spans.
func (t *table) prefetch(d *[positions]int16) uint64 {
	var x uint64
	for i, v := range d {
		if v < 0 {
			v = -v
		}
		if v != 0 {
			p := unsafe.Pointer(&t[i][v-1])
			x ^= *(*uint64)(p) ^ *(*uint64)(unsafe.Add(p, 48)) ^ *(*uint64)(unsafe.Add(p, 96)) ^ *(*uint64)(unsafe.Add(p, nielsSize-8))
		}
	}
	return x
}

// nielsSize is the size of a table entry.
const nielsSize = unsafe.Sizeof(niels{})

// prefetched keeps prefetch's reads: it changes only if the folded words
// happen to equal a constant, which costs one predictable branch.
var prefetched atomic.Uint64
