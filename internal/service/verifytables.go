package service

import (
	"crypto/ed25519"
	"sync"

	"github.com/signerd/signerd/internal/edcheck"
)

// verifyTables verifies Ed25519 signatures for Verify: on an
// edcheck.Verifier's tables for the trusted keys that verify often (a
// quarter of crypto/ed25519.Verify's CPU, the same answer for every
// input), with crypto/ed25519 for the others.
//
// A table costs ~2 ms to build and 480 KiB to hold, so it is built only
// for a key that has checked tableAfter signatures the verified cache
// did not answer (repeats of valid documents are answered there; made-up
// signatures naming a trusted key count too, each a refused call, and at
// worst get that key's table built sooner, as its own users would), and
// at most maxTableKeys are held. A caller replaying public documents of more keys
// than that can make the tables turn over, at one build per tableAfter
// verifications: ~30 µs per verification at worst, never more than the
// tables save.
type verifyTables struct {
	mu sync.Mutex
	// counts counts the verifications by keys that have no table yet;
	// at most maxCountedKeys keys (only trusted keys reach it), dropped
	// whole when full.
	counts map[string]int
	tables *boundedMap[string, *edcheck.Verifier]
}

const (
	tableAfter     = 64
	maxTableKeys   = 16
	maxCountedKeys = 4096
)

func newVerifyTables() *verifyTables {
	return &verifyTables{
		counts: map[string]int{},
		tables: newBoundedMap(maxTableKeys, maxTableKeys*edcheck.VerifierBytes, func(string, *edcheck.Verifier) int { return edcheck.VerifierBytes }),
	}
}

// verify reports whether sig is a valid signature of msg by pub, as
// crypto/ed25519.Verify would.
func (v *verifyTables) verify(pub ed25519.PublicKey, msg, sig []byte) bool {
	if len(pub) != ed25519.PublicKeySize {
		return false // crypto/ed25519 would panic; no key of that size is trusted
	}
	k := string(pub)
	v.mu.Lock()
	t, ok := v.tables.get(k)
	build := false
	if !ok {
		if len(v.counts) >= maxCountedKeys {
			v.counts = map[string]int{}
		}
		v.counts[k]++
		// Exactly one caller sees the count reach tableAfter and builds.
		build = v.counts[k] == tableAfter
	}
	v.mu.Unlock()
	if ok {
		return t.Verify(msg, sig)
	}
	if build {
		if t, err := edcheck.NewVerifier(pub); err == nil {
			v.mu.Lock()
			v.tables.put(k, t)
			delete(v.counts, k)
			v.mu.Unlock()
			return t.Verify(msg, sig)
		}
	}
	return ed25519.Verify(pub, msg, sig)
}

// held reports whether pub has a table (for tests).
func (v *verifyTables) held(pub ed25519.PublicKey) bool {
	v.mu.Lock()
	defer v.mu.Unlock()
	_, ok := v.tables.get(string(pub))
	return ok
}
