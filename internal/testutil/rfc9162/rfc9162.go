// Package rfc9162 is a second, deliberately plain implementation of the
// Merkle tree of RFC 9162 section 2.1, for tests only: roots and proofs by
// the RFC's recursive definitions (2.1.1, 2.1.3.1, 2.1.4.1) and the RFC's
// verification algorithms (2.1.3.2, 2.1.4.2) written from the text. It
// shares no code with internal/store (which makes signerd's proofs) nor
// with github.com/transparency-dev/merkle (which signctl verifies with), so
// that a test checking one against it checks against an independent
// reading of the RFC. It is quadratic and meant for small trees.
package rfc9162

import (
	"bytes"
	"crypto/sha256"
	"errors"
)

// LeafHash is MTH({d(0)}) = SHA-256(0x00 || d(0)).
func LeafHash(leaf []byte) []byte {
	h := sha256.Sum256(append([]byte{0}, leaf...))
	return h[:]
}

// nodeHash is SHA-256(0x01 || left || right).
func nodeHash(l, r []byte) []byte {
	b := make([]byte, 0, 1+len(l)+len(r))
	b = append(append(append(b, 1), l...), r...)
	h := sha256.Sum256(b)
	return h[:]
}

// split is the largest power of two smaller than n (n > 1).
func split(n int) int {
	k := 1
	for k<<1 < n {
		k <<= 1
	}
	return k
}

// Root is MTH(D[n]) of the leaf hashes (section 2.1.1).
func Root(hashes [][]byte) []byte {
	switch n := len(hashes); n {
	case 0:
		h := sha256.Sum256(nil)
		return h[:]
	case 1:
		return hashes[0]
	default:
		k := split(n)
		return nodeHash(Root(hashes[:k]), Root(hashes[k:]))
	}
}

// InclusionProof is PATH(m, D[n]) (section 2.1.3.1).
func InclusionProof(hashes [][]byte, m int) [][]byte {
	n := len(hashes)
	if n <= 1 {
		return nil
	}
	k := split(n)
	if m < k {
		return append(InclusionProof(hashes[:k], m), Root(hashes[k:]))
	}
	return append(InclusionProof(hashes[k:], m-k), Root(hashes[:k]))
}

// ConsistencyProof is PROOF(m, D[n]) (section 2.1.4.1), 0 < m <= n.
func ConsistencyProof(hashes [][]byte, m int) [][]byte {
	return subproof(m, hashes, true)
}

func subproof(m int, d [][]byte, b bool) [][]byte {
	n := len(d)
	if m == n {
		if b {
			return nil
		}
		return [][]byte{Root(d)}
	}
	k := split(n)
	if m <= k {
		return append(subproof(m, d[:k], b), Root(d[k:]))
	}
	return append(subproof(m-k, d[k:], false), Root(d[:k]))
}

// ErrProof is returned for every proof that does not verify.
var ErrProof = errors.New("rfc9162: proof does not verify")

// VerifyInclusion is the algorithm of section 2.1.3.2.
func VerifyInclusion(leafIndex, treeSize uint64, leafHash []byte, path [][]byte, root []byte) error {
	if leafIndex >= treeSize {
		return ErrProof
	}
	fn, sn := leafIndex, treeSize-1
	r := leafHash
	for _, p := range path {
		if sn == 0 {
			return ErrProof
		}
		if fn&1 == 1 || fn == sn {
			r = nodeHash(p, r)
			if fn&1 == 0 {
				for fn&1 == 0 && fn != 0 {
					fn >>= 1
					sn >>= 1
				}
			}
		} else {
			r = nodeHash(r, p)
		}
		fn >>= 1
		sn >>= 1
	}
	if sn != 0 || !bytes.Equal(r, root) {
		return ErrProof
	}
	return nil
}

// VerifyConsistency is the algorithm of section 2.1.4.2.
func VerifyConsistency(first, second uint64, firstHash, secondHash []byte, proof [][]byte) error {
	if first == 0 || first > second {
		return ErrProof
	}
	if first == second {
		if len(proof) != 0 || !bytes.Equal(firstHash, secondHash) {
			return ErrProof
		}
		return nil
	}
	if len(proof) == 0 {
		return ErrProof
	}
	// Step 1: if first is an exact power of 2, prepend first_hash.
	if first&(first-1) == 0 {
		proof = append([][]byte{firstHash}, proof...)
	}
	fn, sn := first-1, second-1
	// Step 3: if LSB(fn) is set, right-shift both until it is not.
	for fn&1 == 1 {
		fn >>= 1
		sn >>= 1
	}
	fr, sr := proof[0], proof[0]
	for _, c := range proof[1:] {
		if sn == 0 {
			return ErrProof
		}
		if fn&1 == 1 || fn == sn {
			fr = nodeHash(c, fr)
			sr = nodeHash(c, sr)
			if fn&1 == 0 {
				for fn&1 == 0 && fn != 0 {
					fn >>= 1
					sn >>= 1
				}
			}
		} else {
			sr = nodeHash(sr, c)
		}
		fn >>= 1
		sn >>= 1
	}
	if sn != 0 || !bytes.Equal(fr, firstHash) || !bytes.Equal(sr, secondHash) {
		return ErrProof
	}
	return nil
}
