// Package keystore defines the contract between signerd's use cases and the
// place private keys live. The only production implementation is
// keystore/pkcs11 (an HSM through PKCS#11); private keys never leave it and
// callers only ever hold a crypto.Signer.
package keystore

import (
	"context"
	"crypto"
	"errors"
	"fmt"

	"github.com/signerd/signerd/internal/errdefs"
)

// Algorithm names a key type and signature scheme. The string values are the
// ones users type (signctl key create --algorithm).
type Algorithm string

// Supported algorithms.
const (
	Ed25519   Algorithm = "ed25519"    // PKCS#11 CKM_EDDSA, plain (not prehash) Ed25519
	ECDSAP256 Algorithm = "ecdsa-p256" // PKCS#11 CKM_ECDSA over a caller-supplied digest, DER output
)

// ErrMechanismMissing marks a refusal because the token offers no mechanism
// for an algorithm (with errdefs.ErrFailedPrecondition): the token cannot
// do it at all, as opposed to failing to do it this time.
var ErrMechanismMissing = errors.New("the token offers no mechanism for this algorithm")

// ParseAlgorithm validates a user-supplied algorithm name.
func ParseAlgorithm(s string) (Algorithm, error) {
	switch Algorithm(s) {
	case Ed25519, ECDSAP256:
		return Algorithm(s), nil
	}
	return "", fmt.Errorf("unknown algorithm %q (want ed25519 or ecdsa-p256): %w", s, errdefs.ErrInvalidArgument)
}

// KeyRef identifies one key pair in the store and says what its public half
// must be. Implementations MUST compare the public key found in the token
// with Public after every lookup and refuse (errdefs.ErrFailedPrecondition,
// reason KEY_MISMATCH) on a difference: a relabelled or swapped object must
// never redirect signatures.
type KeyRef struct {
	// ID is the CKA_ID of the key pair: unique per key version.
	ID []byte
	// Algorithm is the key's algorithm.
	Algorithm Algorithm
	// Public is the public key recorded when the key was created
	// (ed25519.PublicKey or *ecdsa.PublicKey).
	Public crypto.PublicKey
}

// CreateKeyRequest asks for a new key pair generated inside the store.
type CreateKeyRequest struct {
	// ID becomes CKA_ID; the caller guarantees uniqueness (random 16 bytes).
	ID []byte
	// Label becomes CKA_LABEL (informational: lookups go by ID).
	Label     string
	Algorithm Algorithm
}

// ImportKeyRequest brings existing private key material into the store,
// where it is created sensitive and non-extractable.
type ImportKeyRequest struct {
	ID        []byte
	Label     string
	Algorithm Algorithm
	// Private is ed25519.PrivateKey or *ecdsa.PrivateKey. Implementations
	// must not retain it after the call returns.
	Private crypto.PrivateKey
}

// KeyStore creates key pairs inside a token and hands out signers for them.
//
// Signers returned by Signer are safe for concurrent use. For Ed25519 the
// message passed to Sign is the full message (crypto.Hash(0)); for ECDSA it
// is the digest and opts.HashFunc() names its hash (the token does not hash).
type KeyStore interface {
	// CreateKey generates a key pair in the token (CKA_TOKEN, CKA_PRIVATE,
	// CKA_SENSITIVE, CKA_EXTRACTABLE=false, CKA_SIGN) and returns its
	// public key.
	CreateKey(ctx context.Context, req CreateKeyRequest) (crypto.PublicKey, error)
	// ImportKey stores existing private key material as a non-extractable
	// key pair and returns its public key.
	ImportKey(ctx context.Context, req ImportKeyRequest) (crypto.PublicKey, error)
	// Signer finds the key pair, checks its public key against ref.Public
	// and returns a signer for it. errdefs.ErrNotFound if absent.
	Signer(ctx context.Context, ref KeyRef) (crypto.Signer, error)
	// Ping reports whether the token is reachable and logged in; it returns
	// an error wrapping errdefs.ErrUnavailable otherwise.
	Ping(ctx context.Context) error
	// Close logs out, closes sessions and finalizes the module.
	Close() error
}
