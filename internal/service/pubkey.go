package service

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"fmt"

	"github.com/signerd/signerd/internal/errdefs"
	"github.com/signerd/signerd/internal/keystore"
	"github.com/signerd/signerd/internal/pkgsig"
)

// Fingerprint is the key fingerprint signerd records and compares: for
// Ed25519 Cloacina's (hex SHA-256 of the raw 32 bytes), for ECDSA
// SchemaPin's without its "sha256:" prefix (hex SHA-256 of the SPKI DER).
func Fingerprint(pub crypto.PublicKey) (string, error) {
	switch k := pub.(type) {
	case ed25519.PublicKey:
		return pkgsig.Fingerprint(k), nil
	case *ecdsa.PublicKey:
		der, err := x509.MarshalPKIXPublicKey(k)
		if err != nil {
			return "", fmt.Errorf("marshal public key: %w", err)
		}
		sum := sha256.Sum256(der)
		return hex.EncodeToString(sum[:]), nil
	}
	return "", fmt.Errorf("unsupported public key type %T: %w", pub, errdefs.ErrInvalidArgument)
}

// AlgorithmOf returns the algorithm of a supported public key.
func AlgorithmOf(pub crypto.PublicKey) (keystore.Algorithm, error) {
	switch k := pub.(type) {
	case ed25519.PublicKey:
		return keystore.Ed25519, nil
	case *ecdsa.PublicKey:
		if k.Curve == elliptic.P256() {
			return keystore.ECDSAP256, nil
		}
	}
	return "", fmt.Errorf("unsupported public key type %T (want Ed25519 or ECDSA P-256): %w", pub, errdefs.ErrInvalidArgument)
}

// ParsePublicKeyDER parses SPKI DER into a supported public key.
func ParsePublicKeyDER(der []byte) (crypto.PublicKey, error) {
	pub, err := x509.ParsePKIXPublicKey(der)
	if err != nil {
		return nil, fmt.Errorf("parse public key: %v: %w", err, errdefs.ErrInvalidArgument)
	}
	if _, err := AlgorithmOf(pub); err != nil {
		return nil, err
	}
	return pub, nil
}

// ParsePublicKeyPEM parses an SPKI PEM holding an Ed25519 or P-256 key.
func ParsePublicKeyPEM(data []byte) (crypto.PublicKey, []byte, error) {
	block, _ := pem.Decode(data)
	if block == nil || block.Type != "PUBLIC KEY" {
		return nil, nil, fmt.Errorf("not an SPKI public key PEM (want -----BEGIN PUBLIC KEY-----): %w", errdefs.ErrInvalidArgument)
	}
	pub, err := ParsePublicKeyDER(block.Bytes)
	if err != nil {
		return nil, nil, err
	}
	return pub, block.Bytes, nil
}

// PublicKeyPEM renders SPKI DER as PEM (LF line endings, openssl style).
func PublicKeyPEM(der []byte) string {
	return string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}))
}
