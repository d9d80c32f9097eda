// Package eccheck checks ECDSA P-256 signatures made by one known key with
// exactly the acceptance rule of crypto/ecdsa.Verify, at a fraction of its
// cost.
//
// signerd checks every ECDSA signature the HSM returns before it releases
// it (a swapped key object, a fault in the token: see the README's
// "Security properties"). crypto/ecdsa.Verify spends most of its time on
// the constant-time variable-base multiplication [u2]Q, about 256 point
// doublings and 64 additions, because it cannot know Q in advance. For a
// key that signs thousands of times Q is fixed, so its multiples can be
// computed once: a Verifier holds [d·256^i]Q for every signed radix-256
// digit d and position i, and computes [u2]Q with at most 33 additions and
// no doublings. Everything here is public (the key, the digest, the
// signature), so variable time is fine.
//
// On amd64 (p256_amd64.go) the arithmetic is the assembly of Go's own
// P-256, copied from filippo.io/nistec, driven as a variable-time
// verifier: [u1]G from a table of G like Q's, affine table entries added
// with the mixed addition, and x(P) compared with r without an inversion
// (15.6 µs a check here against 30.5 through nistec's public API and 82
// for crypto/ecdsa.Verify, BenchmarkVerify). Elsewhere, or with the
// purego tag, it runs on nistec's public API (generic.go): [u1]G is
// nistec's constant-time ScalarBaseMult, as in crypto/ecdsa. The tests
// run both.
//
// The rule is crypto/ecdsa's (FIPS 186-5 §6.4.2): 1 ≤ r, s < n; e is the
// leftmost 256 bits of the digest as an integer (a shorter digest as it
// is), reduced mod n; w = s⁻¹, u1 = e·w, u2 = r·w mod n; the signature
// verifies when [u1]G + [u2]Q is not the point at infinity and its x
// coordinate mod n is r. The tests compare every answer with
// crypto/ecdsa.Verify, on valid, altered and edge-case signatures.
package eccheck
