package skill

import (
	"crypto/ecdsa"
	"encoding/json"
	"fmt"
	"net/url"
	"strings"

	"github.com/signerd/signerd/internal/errdefs"
)

// WellKnownPath is where a domain publishes its discovery document (spec §8).
const WellKnownPath = "/.well-known/schemapin.json"

// DiscoverySchemaVersion is the schema_version we write (spec §8 example).
const DiscoverySchemaVersion = "1.2"

// Discovery is the .well-known/schemapin.json document (spec §8). Field
// order and tags follow upstream Go's WellKnownResponse.
type Discovery struct {
	// SchemaVersion is the document version ("1.0"…"1.4" are seen); never
	// compared during skill verification.
	SchemaVersion string `json:"schema_version"`
	// DeveloperName is copied into a valid Result.
	DeveloperName string `json:"developer_name"`
	// PublicKeyPEM is the domain's one SPKI P-256 key.
	PublicKeyPEM string `json:"public_key_pem"`
	// Contact is informational.
	Contact string `json:"contact,omitempty"`
	// RevokedKeys lists revoked key fingerprints ("sha256:<hex>").
	RevokedKeys []string `json:"revoked_keys,omitempty"`
	// RevocationEndpoint is the URL of the standalone revocation document.
	RevocationEndpoint string `json:"revocation_endpoint,omitempty"`
}

// ParseDiscovery reads a discovery document. Unknown fields are ignored and
// nothing is required here: upstream's skill verification checks only
// public_key_pem, at its step 2 (spec §6), and VerifyOffline does the same
// so that its error codes match. Use Validate for upstream's fetch-time
// rule.
func ParseDiscovery(data []byte) (*Discovery, error) {
	if err := expectObject(data); err != nil {
		return nil, fmt.Errorf("discovery: %w", err)
	}
	var d Discovery
	if err := json.Unmarshal(data, &d); err != nil {
		return nil, fmt.Errorf("discovery: %w: %w", errdefs.ErrInvalidArgument, err)
	}
	return &d, nil
}

// Validate applies upstream's fetch-time validity rule (schema_version and
// public_key_pem non-empty, spec §8) and checks the key parses as P-256.
func (d *Discovery) Validate() error {
	if d.SchemaVersion == "" {
		return fmt.Errorf("discovery: schema_version is empty: %w", errdefs.ErrInvalidArgument)
	}
	_, err := d.PublicKey()
	return err
}

// PublicKey parses public_key_pem. It applies upstream's pre-check that the
// text contains "-----BEGIN PUBLIC KEY-----" (spec §6 step 2).
func (d *Discovery) PublicKey() (*ecdsa.PublicKey, error) {
	if d == nil || !strings.Contains(d.PublicKeyPEM, publicKeyMarker) {
		return nil, fmt.Errorf("discovery: public_key_pem missing or not a PUBLIC KEY PEM: %w", errdefs.ErrInvalidArgument)
	}
	return ParsePublicKeyPEM([]byte(d.PublicKeyPEM))
}

// NewDiscovery builds the discovery document for pub. Callers set Contact,
// RevokedKeys (fingerprints) and RevocationEndpoint as needed.
func NewDiscovery(pub *ecdsa.PublicKey, developerName string) (*Discovery, error) {
	p, err := EncodePublicKeyPEM(pub)
	if err != nil {
		return nil, fmt.Errorf("discovery: %w", err)
	}
	return &Discovery{
		SchemaVersion: DiscoverySchemaVersion,
		DeveloperName: developerName,
		PublicKeyPEM:  string(p),
	}, nil
}

// Encode returns the document as two-space indented JSON plus a newline.
func (d *Discovery) Encode() ([]byte, error) {
	out, err := json.MarshalIndent(d, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("discovery: %w", err)
	}
	return append(out, '\n'), nil
}

// WellKnownURL returns the discovery URL of domain:
// https://<domain>/.well-known/schemapin.json. As upstream Go's
// ConstructWellKnownURL, an explicit http:// or https:// prefix is kept and
// its path replaced (spec §8). It does no I/O.
func WellKnownURL(domain string) (string, error) {
	d := strings.TrimSpace(domain)
	if d == "" {
		return "", fmt.Errorf("well-known URL: empty domain: %w", errdefs.ErrInvalidArgument)
	}
	if !strings.HasPrefix(d, "http://") && !strings.HasPrefix(d, "https://") {
		d = "https://" + d
	}
	u, err := url.Parse(d)
	if err != nil || u.Host == "" {
		return "", fmt.Errorf("well-known URL: domain %q: %w", domain, errdefs.ErrInvalidArgument)
	}
	u.Path = WellKnownPath
	u.RawPath, u.RawQuery, u.Fragment, u.User = "", "", "", nil
	return u.String(), nil
}
