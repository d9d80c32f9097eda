package skill

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/signerd/signerd/internal/errdefs"
)

// RevocationSchemapinVersion is the schemapin_version of revocation
// documents (spec §9).
const RevocationSchemapinVersion = "1.2"

// RevocationReason is why a key was revoked (spec §9).
type RevocationReason string

// The four reasons Python and Rust accept. Upstream Go accepts any string,
// and so does ParseRevocation (an unknown reason still revokes); the
// builder writes only these so every SDK can read what we publish.
const (
	RevocationKeyCompromise        RevocationReason = "key_compromise"
	RevocationSuperseded           RevocationReason = "superseded"
	RevocationCessationOfOperation RevocationReason = "cessation_of_operation"
	RevocationPrivilegeWithdrawn   RevocationReason = "privilege_withdrawn"
)

// Known reports whether r is one of the four reasons every SDK accepts.
func (r RevocationReason) Known() bool {
	switch r {
	case RevocationKeyCompromise, RevocationSuperseded, RevocationCessationOfOperation, RevocationPrivilegeWithdrawn:
		return true
	}
	return false
}

// RevokedKey is one entry of a revocation document.
type RevokedKey struct {
	// Fingerprint is the revoked key's "sha256:<hex>".
	Fingerprint string `json:"fingerprint"`
	// RevokedAt is informational: revocation applies to every signature.
	RevokedAt string `json:"revoked_at"`
	// Reason is why; unknown reasons still revoke.
	Reason RevocationReason `json:"reason"`
}

// RevocationDocument is the standalone revocation document (spec §9).
type RevocationDocument struct {
	// SchemapinVersion is "1.2".
	SchemapinVersion string `json:"schemapin_version"`
	// Domain is the publishing domain (ignored when checking, as upstream).
	Domain string `json:"domain"`
	// UpdatedAt is RFC 3339 (informational).
	UpdatedAt string `json:"updated_at"`
	// RevokedKeys are the revoked keys.
	RevokedKeys []RevokedKey `json:"revoked_keys"`
}

// ParseRevocation reads a revocation document. It is lenient where
// leniency can only revoke more (unknown reasons, unknown fields, any
// timestamps) and strict where a misread could revoke less: the input must
// be a JSON object, and every entry must carry a fingerprint. A document
// that fails here must fail verification (fail closed), which VerifyOffline
// does.
func ParseRevocation(data []byte) (*RevocationDocument, error) {
	if err := expectObject(data); err != nil {
		return nil, fmt.Errorf("revocation: %w", err)
	}
	var d RevocationDocument
	if err := json.Unmarshal(data, &d); err != nil {
		return nil, fmt.Errorf("revocation: %w: %w", errdefs.ErrInvalidArgument, err)
	}
	for i, k := range d.RevokedKeys {
		if strings.TrimSpace(k.Fingerprint) == "" {
			return nil, fmt.Errorf("revocation: revoked_keys[%d] has no fingerprint: %w", i, errdefs.ErrInvalidArgument)
		}
	}
	return &d, nil
}

// NewRevocationDocument starts a revocation document for domain, updated at
// updatedAt (written RFC 3339 UTC with "Z", as upstream Go).
func NewRevocationDocument(domain string, updatedAt time.Time) *RevocationDocument {
	return &RevocationDocument{
		SchemapinVersion: RevocationSchemapinVersion,
		Domain:           domain,
		UpdatedAt:        formatTime(updatedAt),
		RevokedKeys:      []RevokedKey{},
	}
}

// Add appends a revoked key. The fingerprint must be "sha256:<64 lowercase
// hex>" and the reason one of the four known ones.
func (d *RevocationDocument) Add(fingerprint string, revokedAt time.Time, reason RevocationReason) error {
	if !IsSHA256Ref(fingerprint) {
		return fmt.Errorf("revocation: fingerprint %q is not sha256:<64 lowercase hex>: %w", fingerprint, errdefs.ErrInvalidArgument)
	}
	if !reason.Known() {
		return fmt.Errorf("revocation: reason %q is not one of key_compromise, superseded, cessation_of_operation, privilege_withdrawn: %w", reason, errdefs.ErrInvalidArgument)
	}
	d.RevokedKeys = append(d.RevokedKeys, RevokedKey{Fingerprint: fingerprint, RevokedAt: formatTime(revokedAt), Reason: reason})
	return nil
}

// Encode returns the document as two-space indented JSON plus a newline;
// an empty list is written as [] rather than null.
func (d *RevocationDocument) Encode() ([]byte, error) {
	c := *d
	if c.RevokedKeys == nil {
		c.RevokedKeys = []RevokedKey{}
	}
	out, err := json.MarshalIndent(&c, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("revocation: %w", err)
	}
	return append(out, '\n'), nil
}

// RevokedError says a key is revoked. It matches errdefs.ErrKeyRevoked
// with errors.Is.
type RevokedError struct {
	// Fingerprint is the revoked key.
	Fingerprint string
	// Reason is empty when the key came from a discovery document's plain
	// revoked_keys list.
	Reason RevocationReason
	// SimpleList is true when the discovery document's revoked_keys listed
	// the key.
	SimpleList bool
}

// Error uses upstream Go's messages (spec §6 step 4).
func (e *RevokedError) Error() string {
	if e.SimpleList {
		return fmt.Sprintf("key %s is in simple revocation list", e.Fingerprint)
	}
	return fmt.Sprintf("key %s is revoked: %s", e.Fingerprint, e.Reason)
}

// Unwrap makes errors.Is(err, errdefs.ErrKeyRevoked) hold.
func (e *RevokedError) Unwrap() error { return errdefs.ErrKeyRevoked }

// CheckRevocation is upstream's CheckRevocationCombined (spec §9): first
// the discovery document's revoked_keys (simple), then doc's entries. It
// returns a *RevokedError or nil. Upstream compares exact strings; we
// compare case-insensitively and ignore surrounding space, which can only
// revoke more. The document's domain and times are ignored, as upstream: a
// revoked key is revoked for every signature.
func CheckRevocation(fingerprint string, simple []string, doc *RevocationDocument) error {
	fp := strings.TrimSpace(fingerprint)
	for _, k := range simple {
		if strings.EqualFold(strings.TrimSpace(k), fp) {
			return &RevokedError{Fingerprint: fingerprint, SimpleList: true}
		}
	}
	if doc != nil {
		for _, k := range doc.RevokedKeys {
			if strings.EqualFold(strings.TrimSpace(k.Fingerprint), fp) {
				return &RevokedError{Fingerprint: fingerprint, Reason: k.Reason}
			}
		}
	}
	return nil
}

// formatTime writes t as upstream Go does: UTC, second precision, "Z".
func formatTime(t time.Time) string {
	return t.UTC().Truncate(time.Second).Format(time.RFC3339)
}
