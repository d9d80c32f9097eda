package service

import (
	"crypto/ed25519"
	"crypto/sha256"
	"sync"
)

// DefaultVerifiedCacheEntries bounds the verification cache: about 4 MiB
// (a 32-byte key and map overhead per entry) for the packages of a large
// fleet of loaders.
const DefaultVerifiedCacheEntries = 1 << 16

// verifiedCache remembers Ed25519 signatures that verified, so that a
// loader checking the same package on every start pays the curve arithmetic
// (~90 µs here, half of a Verify call) once, not every time.
//
// Only the mathematical fact is cached — this signature is valid over this
// digest under this public key — which can never become false: whether the
// key is trusted, revoked or required is decided afresh on every call, and
// failed verifications are never cached. Entries are keyed by a SHA-256 of
// all three, so memory per entry is fixed whatever the input.
//
// Two generations bound it without per-entry bookkeeping: new entries go
// to cur; when cur holds half the bound it becomes prev and the old prev is
// dropped; a hit in prev moves the entry back to cur. Entries used recently
// therefore stay, and at most max are kept.
type verifiedCache struct {
	half int // 0: caching off

	mu        sync.Mutex
	cur, prev map[[sha256.Size]byte]struct{}
}

func newVerifiedCache(maxEntries int) *verifiedCache {
	c := &verifiedCache{half: maxEntries / 2}
	if c.half > 0 {
		c.cur = make(map[[sha256.Size]byte]struct{})
	}
	return c
}

// verifiedKey names one (public key, digest, signature) triple; ok is
// false unless all three have their fixed lengths, so that no two triples
// can share the bytes that are hashed (such a triple is never cached, and
// verification then refuses it). The prefix separates it from any other
// use of SHA-256 over such bytes.
func verifiedKey(pub ed25519.PublicKey, digest []byte, sig []byte) (k [sha256.Size]byte, ok bool) {
	if len(pub) != ed25519.PublicKeySize || len(digest) != sha256.Size || len(sig) != ed25519.SignatureSize {
		return k, false
	}
	h := sha256.New()
	h.Write([]byte("signerd verified ed25519\x00"))
	h.Write(pub)
	h.Write(digest)
	h.Write(sig)
	h.Sum(k[:0])
	return k, true
}

// has reports whether k verified before.
func (c *verifiedCache) has(k [sha256.Size]byte) bool {
	if c.half == 0 {
		return false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.cur[k]; ok {
		return true
	}
	if _, ok := c.prev[k]; ok {
		delete(c.prev, k)
		c.addLocked(k)
		return true
	}
	return false
}

// add records that k verified.
func (c *verifiedCache) add(k [sha256.Size]byte) {
	if c.half == 0 {
		return
	}
	c.mu.Lock()
	c.addLocked(k)
	c.mu.Unlock()
}

func (c *verifiedCache) addLocked(k [sha256.Size]byte) {
	if len(c.cur) >= c.half {
		c.prev, c.cur = c.cur, make(map[[sha256.Size]byte]struct{}, c.half)
	}
	c.cur[k] = struct{}{}
}

// len is the number of entries kept (for tests).
func (c *verifiedCache) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.cur) + len(c.prev)
}
