package skill

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"strings"

	"github.com/signerd/signerd/internal/errdefs"
)

// FingerprintPrefix starts every key fingerprint and every hash string of
// the format (skill_hash, previous_hash, manifest values).
const FingerprintPrefix = "sha256:"

// publicKeyMarker must appear in a discovery document's public_key_pem
// before upstream even tries to parse it (spec §6 step 2).
const publicKeyMarker = "-----BEGIN PUBLIC KEY-----"

// ParsePublicKeyPEM parses an SPKI "PUBLIC KEY" PEM block holding a P-256
// key. Text before the block and CRLF line ends are tolerated (pem.Decode).
// Unlike upstream Go, other curves are refused: every SDK generates P-256
// only and Rust refuses anything else (spec §2, §16.14), so no signature an
// upstream signer produces is lost.
func ParsePublicKeyPEM(data []byte) (*ecdsa.PublicKey, error) {
	block, _ := pem.Decode(data)
	if block == nil {
		return nil, fmt.Errorf("public key: no PEM block: %w", errdefs.ErrInvalidArgument)
	}
	if block.Type != "PUBLIC KEY" {
		return nil, fmt.Errorf("public key: PEM block is %q, want \"PUBLIC KEY\": %w", block.Type, errdefs.ErrInvalidArgument)
	}
	k, err := x509.ParsePKIXPublicKey(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("public key: %w: %w", errdefs.ErrInvalidArgument, err)
	}
	pub, ok := k.(*ecdsa.PublicKey)
	if !ok {
		return nil, fmt.Errorf("public key: %T is not ECDSA: %w", k, errdefs.ErrInvalidArgument)
	}
	if pub.Curve != elliptic.P256() {
		return nil, fmt.Errorf("public key: curve %s is not P-256: %w", pub.Curve.Params().Name, errdefs.ErrInvalidArgument)
	}
	return pub, nil
}

// ParsePrivateKeyPEM parses a P-256 private key in the PEM forms upstream
// accepts (spec §2): PKCS#8 "PRIVATE KEY" or SEC1 "EC PRIVATE KEY". It is
// for key import only; signerd never holds private keys outside the HSM.
// Upstream Go reads only the first PEM block and so rejects the output of
// `openssl ecparam -genkey` without -noout; we skip "EC PARAMETERS" blocks
// instead, as Python and JS do. Encrypted PEM is refused.
func ParsePrivateKeyPEM(data []byte) (*ecdsa.PrivateKey, error) {
	rest := data
	for {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			return nil, fmt.Errorf("private key: no PRIVATE KEY or EC PRIVATE KEY PEM block: %w", errdefs.ErrInvalidArgument)
		}
		if _, enc := block.Headers["Proc-Type"]; enc {
			return nil, fmt.Errorf("private key: encrypted PEM is not supported: %w", errdefs.ErrInvalidArgument)
		}
		var priv *ecdsa.PrivateKey
		switch block.Type {
		case "EC PARAMETERS":
			continue
		case "PRIVATE KEY":
			k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
			if err != nil {
				return nil, fmt.Errorf("private key: PKCS#8: %w: %w", errdefs.ErrInvalidArgument, err)
			}
			p, ok := k.(*ecdsa.PrivateKey)
			if !ok {
				return nil, fmt.Errorf("private key: %T is not ECDSA: %w", k, errdefs.ErrInvalidArgument)
			}
			priv = p
		case "EC PRIVATE KEY":
			p, err := x509.ParseECPrivateKey(block.Bytes)
			if err != nil {
				return nil, fmt.Errorf("private key: SEC1: %w: %w", errdefs.ErrInvalidArgument, err)
			}
			priv = p
		default:
			return nil, fmt.Errorf("private key: unexpected PEM block %q: %w", block.Type, errdefs.ErrInvalidArgument)
		}
		if priv.Curve != elliptic.P256() {
			return nil, fmt.Errorf("private key: curve %s is not P-256: %w", priv.Curve.Params().Name, errdefs.ErrInvalidArgument)
		}
		return priv, nil
	}
}

// EncodePublicKeyPEM returns the SPKI "PUBLIC KEY" PEM of pub, the form of
// public_key_pem in discovery documents.
func EncodePublicKeyPEM(pub *ecdsa.PublicKey) ([]byte, error) {
	der, err := spkiDER(pub)
	if err != nil {
		return nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}), nil
}

// Fingerprint returns "sha256:" + lowercase hex of SHA-256 over the DER
// SubjectPublicKeyInfo of pub (spec §2). The DER is re-encoded with an
// uncompressed point, so it is the same as
// `openssl pkey -pubin -outform DER | sha256sum` whatever the input form.
// It is also upstream's default signer_kid.
func Fingerprint(pub *ecdsa.PublicKey) (string, error) {
	der, err := spkiDER(pub)
	if err != nil {
		return "", err
	}
	sum := sha256.Sum256(der)
	return FingerprintPrefix + hex.EncodeToString(sum[:]), nil
}

// FingerprintPEM parses a public key PEM and returns its Fingerprint.
func FingerprintPEM(data []byte) (string, error) {
	pub, err := ParsePublicKeyPEM(data)
	if err != nil {
		return "", err
	}
	return Fingerprint(pub)
}

func spkiDER(pub *ecdsa.PublicKey) ([]byte, error) {
	if pub == nil || pub.Curve == nil {
		return nil, fmt.Errorf("public key: nil: %w", errdefs.ErrInvalidArgument)
	}
	if pub.Curve != elliptic.P256() {
		return nil, fmt.Errorf("public key: curve %s is not P-256: %w", pub.Curve.Params().Name, errdefs.ErrInvalidArgument)
	}
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return nil, fmt.Errorf("public key: %w: %w", errdefs.ErrInvalidArgument, err)
	}
	return der, nil
}

// IsSHA256Ref reports whether s is "sha256:" followed by exactly 64
// lowercase hex digits: the shape of fingerprints, skill_hash, previous_hash
// and manifest values as upstream writes them.
func IsSHA256Ref(s string) bool {
	h, ok := strings.CutPrefix(s, FingerprintPrefix)
	return ok && isLowerHex64(h)
}

func isLowerHex64(s string) bool {
	if len(s) != 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}
