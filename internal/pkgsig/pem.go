package pkgsig

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"fmt"

	"github.com/signerd/signerd/internal/errdefs"
)

// Fingerprint is Cloacina's key fingerprint: lowercase hex SHA-256 of the
// raw 32-byte public key (not of its DER or PEM).
func Fingerprint(pub ed25519.PublicKey) string {
	sum := sha256.Sum256(pub)
	return hex.EncodeToString(sum[:])
}

// EncodePublicKeyPEM returns the SPKI "PUBLIC KEY" PEM of pub with LF line
// endings, as openssl pkey -pubout writes it. Cloacina's own exporter uses
// CRLF; both parse everywhere.
func EncodePublicKeyPEM(pub ed25519.PublicKey) []byte {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		// Only reachable with a wrong-length key, which is a programming error.
		panic(fmt.Sprintf("pkgsig: marshal ed25519 public key: %v", err))
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
}

// ParsePublicKeyPEM parses an Ed25519 SPKI PEM (LF or CRLF). Anything else —
// no PEM block, another block type, another algorithm, trailing garbage in
// the DER — is ErrInvalidArgument with a message naming the problem.
func ParsePublicKeyPEM(data []byte) (ed25519.PublicKey, error) {
	block, rest := pem.Decode(data)
	if block == nil {
		return nil, fmt.Errorf("no PEM block found (want -----BEGIN PUBLIC KEY-----): %w", errdefs.ErrInvalidArgument)
	}
	if block.Type != "PUBLIC KEY" {
		return nil, fmt.Errorf("PEM block is %q, want \"PUBLIC KEY\" (SPKI): %w", block.Type, errdefs.ErrInvalidArgument)
	}
	if len(bytes.TrimSpace(rest)) != 0 {
		return nil, fmt.Errorf("unexpected data after the PEM block: %w", errdefs.ErrInvalidArgument)
	}
	key, err := x509.ParsePKIXPublicKey(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("PEM does not hold a valid SPKI public key: %v: %w", err, errdefs.ErrInvalidArgument)
	}
	pub, ok := key.(ed25519.PublicKey)
	if !ok {
		return nil, fmt.Errorf("public key is %T, want Ed25519: %w", key, errdefs.ErrInvalidArgument)
	}
	return pub, nil
}
