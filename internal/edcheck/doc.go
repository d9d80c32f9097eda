// Package edcheck checks Ed25519 signatures made by one known key with
// exactly the acceptance rule of crypto/ed25519.Verify, at a fraction of
// its cost.
//
// signerd checks every Ed25519 signature the HSM returns before it
// releases it: Ed25519 signatures are deterministic, so one faulty
// signature beside a correct one of the same message gives away the
// private key. crypto/ed25519.Verify spends most of its time on 253 point
// doublings of a variable-base scalar multiplication [k]A. For a key that
// signs thousands of times the base is fixed, so its multiples can be
// computed once: a Verifier holds [d·256^i]A for every signed radix-256
// digit d and position i (and the same table of the base point B, shared
// by all keys), and computes [S]B − [k]A with 64 point additions and no
// doublings.
//
// Why not batch verification. A randomized batch equation
// Σ z_i([S_i]B − R_i − [k_i]A) = 0 costs even less per signature, but it
// cannot have crypto/ed25519's (cofactorless) acceptance set: the small-
// order (torsion) part of the sum is one of 8 points whatever n is, so
// signatures whose R is off by a small-order point can cancel each other
// and pass the batch while each fails alone (Chalkias et al., "Taming the
// many EdDSAs", 2020). For signatures signerd made, such an R is exactly
// the fault that leaks the key: a fault adding a small-order point to R
// before it is hashed gives S = r + H(R'‖A‖M)·a, which with the correct
// signature of the same message yields a. Excluding it needs a
// per-signature check that R is in the prime-order subgroup, a scalar
// multiplication by the group order that costs as much as the
// verification it would save. The fixed-base check here computes the very
// point crypto/ed25519 computes, [S]B + [k](−A) with the same integers S
// and k, and compares its encoding with R's bytes, so it accepts and
// refuses exactly what crypto/ed25519.Verify does, for any input.
package edcheck
