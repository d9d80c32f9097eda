package pkgsig

import (
	"bytes"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"time"

	"github.com/signerd/signerd/internal/errdefs"
)

// Format constants of Cloacina's DetachedSignature.
const (
	Version   = 1
	Algorithm = "ed25519"
)

// Document is Cloacina's DetachedSignature. Field order is the wire order.
type Document struct {
	Version        int    `json:"version"`
	Algorithm      string `json:"algorithm"`
	PackageHash    string `json:"package_hash"`
	KeyFingerprint string `json:"key_fingerprint"`
	Signature      string `json:"signature"`
	SignedAt       string `json:"signed_at"`
}

// Signature is a parsed, structurally valid detached signature.
type Signature struct {
	Digest      [DigestSize]byte
	Fingerprint string
	Sig         []byte // 64 bytes
	// SignedAt is informational: it is not covered by the signature.
	SignedAt string
}

// FormatSignedAt renders t as chrono's DateTime<Utc>::to_rfc3339 does:
// "+00:00" rather than "Z", and a fraction only when it is non-zero (3, 6
// or 9 digits, chrono's AutoSi).
func FormatSignedAt(t time.Time) string {
	t = t.UTC()
	ns := t.Nanosecond()
	base := t.Format("2006-01-02T15:04:05")
	switch {
	case ns == 0:
	case ns%1_000_000 == 0:
		base += fmt.Sprintf(".%03d", ns/1_000_000)
	case ns%1_000 == 0:
		base += fmt.Sprintf(".%06d", ns/1_000)
	default:
		base += fmt.Sprintf(".%09d", ns)
	}
	return base + "+00:00"
}

// NewDocument builds the document for a signature made over digest by pub.
func NewDocument(digest [DigestSize]byte, pub ed25519.PublicKey, sig []byte, signedAt time.Time) Document {
	return Document{
		Version:        Version,
		Algorithm:      Algorithm,
		PackageHash:    hex.EncodeToString(digest[:]),
		KeyFingerprint: Fingerprint(pub),
		Signature:      base64.StdEncoding.EncodeToString(sig),
		SignedAt:       FormatSignedAt(signedAt),
	}
}

// Encode writes the document exactly as serde_json::to_string_pretty does:
// two-space indent, "key": value, no trailing newline. HTML escaping is
// off because serde does not escape '<', '>' or '&'.
func (d Document) Encode() []byte {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(d); err != nil {
		panic(fmt.Sprintf("pkgsig: encode document: %v", err)) // strings and ints only: unreachable
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n"))
}

// maxDocumentSize bounds what Parse accepts; a real document is ~330 bytes.
const maxDocumentSize = 64 << 10

// Parse reads a detached signature leniently (unknown fields ignored,
// surrounding whitespace ignored) but checks every field it relies on. Any
// problem is a *errdefs.VerificationError with reason MALFORMED_SIGNATURE.
func Parse(data []byte) (Signature, error) {
	var s Signature
	if len(data) > maxDocumentSize {
		return s, malformed("signature document is %d bytes, more than the %d allowed", len(data), maxDocumentSize)
	}
	if len(bytes.TrimSpace(data)) == 0 {
		return s, malformed("signature document is empty")
	}
	var raw struct {
		Version        *int    `json:"version"`
		Algorithm      *string `json:"algorithm"`
		PackageHash    *string `json:"package_hash"`
		KeyFingerprint *string `json:"key_fingerprint"`
		Signature      *string `json:"signature"`
		SignedAt       *string `json:"signed_at"`
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&raw); err != nil {
		return s, malformed("signature document is not valid JSON: %v", err)
	}
	if dec.More() {
		return s, malformed("signature document has data after the JSON object")
	}
	switch {
	case raw.Version == nil:
		return s, malformed("signature document has no \"version\"")
	case *raw.Version != Version:
		return s, malformed("signature document version %d is not supported (want %d)", *raw.Version, Version)
	case raw.Algorithm == nil:
		return s, malformed("signature document has no \"algorithm\"")
	case *raw.Algorithm != Algorithm:
		return s, malformed("signature algorithm %q is not supported (want %q)", *raw.Algorithm, Algorithm)
	case raw.PackageHash == nil:
		return s, malformed("signature document has no \"package_hash\"")
	case raw.KeyFingerprint == nil:
		return s, malformed("signature document has no \"key_fingerprint\"")
	case raw.Signature == nil:
		return s, malformed("signature document has no \"signature\"")
	}
	d, err := ParseHexDigest(*raw.PackageHash)
	if err != nil {
		return s, malformed("package_hash %q is not 64 lowercase hex characters", *raw.PackageHash)
	}
	if len(*raw.KeyFingerprint) != 64 || !isLowerHex(*raw.KeyFingerprint) {
		return s, malformed("key_fingerprint %q is not 64 lowercase hex characters", *raw.KeyFingerprint)
	}
	sig, err := base64.StdEncoding.Strict().DecodeString(*raw.Signature)
	if err != nil {
		return s, malformed("signature is not standard base64: %v", err)
	}
	if len(sig) != ed25519.SignatureSize {
		return s, malformed("signature is %d bytes, want %d", len(sig), ed25519.SignatureSize)
	}
	s.Digest = d
	s.Fingerprint = *raw.KeyFingerprint
	s.Sig = sig
	if raw.SignedAt != nil {
		s.SignedAt = *raw.SignedAt
	}
	return s, nil
}

func malformed(format string, args ...any) error {
	return errdefs.Verification(errdefs.ReasonMalformedSignature, format, args...)
}
