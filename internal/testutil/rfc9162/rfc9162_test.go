package rfc9162

import (
	"bytes"
	"fmt"
	"testing"

	"github.com/transparency-dev/merkle/testonly"
)

// TestKnownRoots checks this implementation against transparency-dev/merkle's
// published vectors (RFC 6962 hashing; RFC 9162 is the same for SHA-256).
func TestKnownRoots(t *testing.T) {
	leaves := testonly.LeafInputs()
	var hashes [][]byte
	for n, want := range testonly.RootHashes() {
		if got := Root(hashes); !bytes.Equal(got, want) {
			t.Errorf("root of %d leaves = %x, want %x", n, got, want)
		}
		if n < len(leaves) {
			hashes = append(hashes, LeafHash(leaves[n]))
		}
	}
}

// TestProofsVerify checks every proof this package makes verifies with
// this package's verifiers, and that a changed hash, index or size fails.
func TestProofsVerify(t *testing.T) {
	var hashes [][]byte
	for i := range 20 {
		hashes = append(hashes, LeafHash([]byte(fmt.Sprint("leaf", i))))
	}
	for n := 1; n <= len(hashes); n++ {
		root := Root(hashes[:n])
		for m := 0; m < n; m++ {
			p := InclusionProof(hashes[:n], m)
			if err := VerifyInclusion(uint64(m), uint64(n), hashes[m], p, root); err != nil {
				t.Fatalf("inclusion %d in %d: %v", m, n, err)
			}
			if VerifyInclusion(uint64(m), uint64(n), hashes[(m+1)%n], p, root) == nil && n > 1 {
				t.Fatalf("inclusion %d in %d: another leaf verified", m, n)
			}
			if VerifyInclusion(uint64(m), uint64(n), hashes[m], p, Root(hashes[:n-1])) == nil {
				t.Fatalf("inclusion %d in %d: verified against the root of %d leaves", m, n, n-1)
			}
			if len(p) > 0 && VerifyInclusion(uint64(m), uint64(n), hashes[m], p[:len(p)-1], root) == nil {
				t.Fatalf("inclusion %d in %d: a shortened proof verified", m, n)
			}
		}
		for m := 1; m <= n; m++ {
			p := ConsistencyProof(hashes[:n], m)
			if err := VerifyConsistency(uint64(m), uint64(n), Root(hashes[:m]), root, p); err != nil {
				t.Fatalf("consistency %d to %d: %v", m, n, err)
			}
			if m < n && VerifyConsistency(uint64(m), uint64(n), Root(hashes[:m]), LeafHash(nil), p) == nil {
				t.Fatalf("consistency %d to %d: verified against a wrong root", m, n)
			}
		}
	}
}
