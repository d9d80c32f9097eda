package pkgsig

import (
	"bytes"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strconv"
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
//
// The daemon encodes one document per signature, so the usual document
// (hex, base64 and a timestamp: nothing JSON would escape) is written
// directly, a tenth of encoding/json's cost with its indenting pass;
// anything else goes through encoding/json. TestEncodeFastPath holds the
// two to the same bytes.
func (d Document) Encode() []byte {
	if !plainJSON(d.Algorithm) || !plainJSON(d.PackageHash) || !plainJSON(d.KeyFingerprint) || !plainJSON(d.Signature) || !plainJSON(d.SignedAt) {
		return d.encodeJSON()
	}
	b := make([]byte, 0, 64+len(d.Algorithm)+len(d.PackageHash)+len(d.KeyFingerprint)+len(d.Signature)+len(d.SignedAt)+96)
	b = append(b, "{\n  \"version\": "...)
	b = strconv.AppendInt(b, int64(d.Version), 10)
	for _, f := range [...]struct{ key, value string }{
		{"algorithm", d.Algorithm}, {"package_hash", d.PackageHash}, {"key_fingerprint", d.KeyFingerprint},
		{"signature", d.Signature}, {"signed_at", d.SignedAt},
	} {
		b = append(b, ",\n  \""...)
		b = append(b, f.key...)
		b = append(b, "\": \""...)
		b = append(b, f.value...)
		b = append(b, '"')
	}
	return append(b, "\n}"...)
}

// plainJSON reports whether encoding/json writes s as itself between
// quotes (with HTML escaping off): printable ASCII without '"' and '\\'.
func plainJSON(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c > 0x7e || c == '"' || c == '\\' {
			return false
		}
	}
	return true
}

// encodeJSON is Encode through encoding/json.
func (d Document) encodeJSON() []byte {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(d); err != nil {
		panic(fmt.Sprintf("pkgsig: encode document: %v", err)) // strings and ints only: unreachable
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n"))
}

// MaxDocumentSize bounds what Parse accepts; a real document is ~330
// bytes. A larger one is MALFORMED_SIGNATURE.
const MaxDocumentSize = 64 << 10

// Parse reads a detached signature never more loosely than Cloacina's
// reader (see reader.go for exactly what is accepted) and checks every
// field it relies on: version 1, algorithm ed25519, lowercase hex hash and
// fingerprint, a 64-byte signature in standard padded base64 with no byte
// outside the alphabet. Unknown fields and surrounding whitespace are
// accepted, as Cloacina accepts them. Any problem is a
// *errdefs.VerificationError with reason MALFORMED_SIGNATURE.
func Parse(data []byte) (Signature, error) {
	var s Signature
	if len(data) > MaxDocumentSize {
		return s, malformed("signature document is %d bytes, more than the %d allowed", len(data), MaxDocumentSize)
	}
	raw, err := readDocument(data)
	if err != nil {
		return s, malformed("%v", err)
	}
	f := raw.fields
	switch v := f[fieldVersion]; {
	case !isUnsignedInteger(v):
		return s, malformed("signature document version %s is not an unsigned integer", v)
	case v != strconv.Itoa(Version):
		return s, malformed("signature document version %s is not supported (want %d)", v, Version)
	case f[fieldAlgorithm] != Algorithm:
		return s, malformed("signature algorithm %q is not supported (want %q)", f[fieldAlgorithm], Algorithm)
	}
	d, err := ParseHexDigest(f[fieldPackageHash])
	if err != nil {
		return s, malformed("package_hash %q is not 64 lowercase hex characters", f[fieldPackageHash])
	}
	if fp := f[fieldKeyFingerprint]; len(fp) != 64 || !isLowerHex(fp) {
		return s, malformed("key_fingerprint %q is not 64 lowercase hex characters", fp)
	}
	sig, err := decodeStandardBase64(f[fieldSignature])
	if err != nil {
		return s, malformed("signature is not standard base64: %v", err)
	}
	if len(sig) != ed25519.SignatureSize {
		return s, malformed("signature is %d bytes, want %d", len(sig), ed25519.SignatureSize)
	}
	s.Digest = d
	s.Fingerprint = f[fieldKeyFingerprint]
	s.Sig = sig
	s.SignedAt = f[fieldSignedAt]
	return s, nil
}

// decodeStandardBase64 decodes as the base64 crate's STANDARD engine does:
// the standard alphabet, canonical padding, zero trailing bits, and no other
// byte at all. Go's strict decoder would still skip CR and LF, which the
// base64 crate refuses.
func decodeStandardBase64(s string) ([]byte, error) {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '+' || c == '/' || c == '=') {
			return nil, fmt.Errorf("byte %#02x at offset %d is not in the standard alphabet", c, i)
		}
	}
	return base64.StdEncoding.Strict().DecodeString(s)
}

// isUnsignedInteger reports whether a JSON number literal is what serde
// reads into a u32's type family: digits only, no sign, fraction or
// exponent.
func isUnsignedInteger(lit string) bool {
	if lit == "" {
		return false
	}
	for i := 0; i < len(lit); i++ {
		if !isDigit(lit[i]) {
			return false
		}
	}
	return true
}

func malformed(format string, args ...any) error {
	return errdefs.Verification(errdefs.ReasonMalformedSignature, format, args...)
}
