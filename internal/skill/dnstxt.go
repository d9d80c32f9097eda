package skill

import (
	"fmt"
	"strings"

	"github.com/signerd/signerd/internal/errdefs"
)

// DNSTXTVersion is the required v= value of a SchemaPin TXT record.
const DNSTXTVersion = "schemapin1"

// DNSTXT is a parsed _schemapin TXT record (spec §7).
type DNSTXT struct {
	// Version is always "schemapin1" after a successful parse.
	Version string
	// KeyID is the optional kid; it never takes part in matching.
	KeyID string
	// Fingerprint is the lowercased fp value, "sha256:<hex>".
	Fingerprint string
}

// ParseDNSTXT parses a TXT value such as
// "v=schemapin1; kid=acme-2026-01; fp=sha256:<hex>" exactly as upstream
// (spec §7): parts split on ';' and trimmed, empty parts skipped, each part
// needs '=', keys lowercased, last duplicate wins, unknown keys ignored, v
// must be "schemapin1", fp must start with "sha256:" and is lowercased.
// Errors wrap errdefs.ErrInvalidArgument; a present but malformed record
// fails verification with discovery_invalid.
func ParseDNSTXT(value string) (DNSTXT, error) {
	var r DNSTXT
	var haveV, haveFP bool
	for part := range strings.SplitSeq(value, ";") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		k, v, ok := strings.Cut(part, "=")
		if !ok {
			return DNSTXT{}, fmt.Errorf("DNS TXT field missing '=': %s: %w", part, errdefs.ErrInvalidArgument)
		}
		v = strings.TrimSpace(v)
		switch strings.ToLower(strings.TrimSpace(k)) {
		case "v":
			r.Version, haveV = v, true
		case "kid":
			r.KeyID = v
		case "fp":
			r.Fingerprint, haveFP = strings.ToLower(v), true
		}
	}
	if !haveV {
		return DNSTXT{}, fmt.Errorf("DNS TXT record missing required 'v' field: %w", errdefs.ErrInvalidArgument)
	}
	if r.Version != DNSTXTVersion {
		return DNSTXT{}, fmt.Errorf("DNS TXT unsupported version: %s: %w", r.Version, errdefs.ErrInvalidArgument)
	}
	if !haveFP {
		return DNSTXT{}, fmt.Errorf("DNS TXT record missing required 'fp' field: %w", errdefs.ErrInvalidArgument)
	}
	if !strings.HasPrefix(r.Fingerprint, FingerprintPrefix) {
		return DNSTXT{}, fmt.Errorf("DNS TXT 'fp' must be sha256:<hex>: %s: %w", r.Fingerprint, errdefs.ErrInvalidArgument)
	}
	return r, nil
}

// NewDNSTXT builds the record for a key fingerprint. The fingerprint must
// be "sha256:<64 lowercase hex>"; kid is optional and may not contain ';'
// (the field separator) or surrounding space (the parser trims it).
func NewDNSTXT(kid, fingerprint string) (DNSTXT, error) {
	if !IsSHA256Ref(fingerprint) {
		return DNSTXT{}, fmt.Errorf("DNS TXT: fingerprint %q is not sha256:<64 lowercase hex>: %w", fingerprint, errdefs.ErrInvalidArgument)
	}
	if strings.ContainsAny(kid, ";\"") || strings.TrimSpace(kid) != kid {
		return DNSTXT{}, fmt.Errorf("DNS TXT: kid %q contains ';', '\"' or surrounding space: %w", kid, errdefs.ErrInvalidArgument)
	}
	return DNSTXT{Version: DNSTXTVersion, KeyID: kid, Fingerprint: fingerprint}, nil
}

// String renders the record value: "v=schemapin1; kid=<kid>; fp=<fp>", the
// kid part omitted when empty. ParseDNSTXT(r.String()) returns r for every
// r that ParseDNSTXT or NewDNSTXT produced.
func (r DNSTXT) String() string {
	var b strings.Builder
	b.WriteString("v=")
	b.WriteString(r.Version)
	if r.KeyID != "" {
		b.WriteString("; kid=")
		b.WriteString(r.KeyID)
	}
	b.WriteString("; fp=")
	b.WriteString(r.Fingerprint)
	return b.String()
}

// Matches reports whether the record names the key with this fingerprint,
// comparing lowercased as upstream (spec §6.3).
func (r DNSTXT) Matches(fingerprint string) bool {
	return r.Fingerprint == strings.ToLower(strings.TrimSpace(fingerprint))
}

// DNSTXTName is the record's owner name: "_schemapin." + domain, with one
// trailing dot stripped from domain (upstream TxtRecordName, spec §7).
func DNSTXTName(domain string) string {
	return "_schemapin." + strings.TrimSuffix(domain, ".")
}

// SelectDNSTXT picks, as upstream FetchDnsTxt, the first TXT value (chunks
// of one RR already joined, as net.LookupTXT returns them) that contains
// "v=schemapin1". ok is false when there is none, which means "absent".
func SelectDNSTXT(values []string) (value string, ok bool) {
	for _, v := range values {
		if strings.Contains(v, "v="+DNSTXTVersion) {
			return v, true
		}
	}
	return "", false
}
