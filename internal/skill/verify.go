package skill

import (
	"context"
	"crypto/ecdsa"
	"encoding/hex"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"time"

	"github.com/signerd/signerd/internal/errdefs"
)

// KeyPinning is the TOFU part of a result. FirstSeen is only ever set by
// Rust upstream (spec §6.4) and is kept for shape compatibility.
type KeyPinning struct {
	// Status is first_use or pinned.
	Status PinStatus `json:"status"`
	// FirstSeen is never set by this package.
	FirstSeen string `json:"first_seen,omitempty"`
}

// Result is upstream's verification result (spec §6.4, Go JSON tags and
// field order) plus digest_convention. A failure has Valid false and an
// ErrorCode; an expired signature is Valid with WarningSignatureExpired.
// Fields tagged "-" are for the daemon and CLI, not the result JSON.
type Result struct {
	// Valid is the verdict.
	Valid bool `json:"valid"`
	// Domain is the signature's domain claim (absent when no signature was
	// read).
	Domain string `json:"domain,omitempty"`
	// DeveloperName comes from the discovery document.
	DeveloperName string `json:"developer_name,omitempty"`
	// KeyPinning is set on success when a PinStore was given.
	KeyPinning *KeyPinning `json:"key_pinning,omitempty"`
	// ErrorCode is the upstream code of a failure.
	ErrorCode ErrorCode `json:"error_code,omitempty"`
	// ErrorMessage is upstream's message where upstream has one.
	ErrorMessage string `json:"error_message,omitempty"`
	// Warnings are the Warning* values that applied to a valid result.
	Warnings []string `json:"warnings,omitempty"`
	// Expired is true when expires_at is in the past (still valid).
	Expired bool `json:"expired,omitempty"`
	// ExpiresAt mirrors a parseable expires_at.
	ExpiresAt string `json:"expires_at,omitempty"`
	// SchemaVersion mirrors the signature's schema_version.
	SchemaVersion string `json:"schema_version,omitempty"`
	// PreviousHash mirrors the signature's previous_hash.
	PreviousHash string `json:"previous_hash,omitempty"`
	// DigestConvention is the convention that verified: "sha256" or "go".
	DigestConvention DigestConvention `json:"digest_convention,omitempty"`
	// PathOrder is the path order of the canonicalization that verified:
	// "utf8" as the specification, or "utf16" as the JavaScript SDK sorts.
	PathOrder PathOrder `json:"path_order,omitempty"`
	// Tampered, on a PACKAGE_TAMPERED failure whose files are known, says
	// which differ from the signed file_manifest.
	Tampered *TamperReport `json:"tampered,omitempty"`
	// Unsigned, on a valid result, lists the folder's entries that the
	// signature does not cover (Manifest.Unsigned: symlinks, special
	// files, nested .schemapin.sig files), with WarningUnsignedEntries.
	Unsigned []string `json:"unsigned_entries,omitempty"`
	// Hint says in words what a failure or an unusual success means, when
	// there is more to say than the error message.
	Hint string `json:"hint,omitempty"`

	// KeyFingerprint is the fingerprint of the verifying key, once known.
	KeyFingerprint string `json:"-"`
	// SkillHash is "sha256:"+hex(root) of the folder, once computed.
	SkillHash string `json:"-"`
	// ToolID is the pin-store tool id that was used.
	ToolID string `json:"-"`

	reason errdefs.Reason
}

// Err returns nil for a valid result and otherwise a
// *errdefs.VerificationError whose Reason is as specific as the failure
// allows (SIGNATURE_NOT_FOUND, MALFORMED_SIGNATURE, PACKAGE_TAMPERED,
// INVALID_SIGNATURE, KEY_REVOKED, UNTRUSTED_SIGNER).
func (r *Result) Err() error {
	if r == nil {
		return errdefs.Verification(errdefs.ReasonInvalidSignature, "no verification result")
	}
	if r.Valid {
		return nil
	}
	reason := r.reason
	if reason == "" {
		reason = r.ErrorCode.Reason()
	}
	return &errdefs.VerificationError{
		Reason:      reason,
		Message:     fmt.Sprintf("%s: %s", r.ErrorCode, r.ErrorMessage),
		PackageHash: strings.TrimPrefix(r.SkillHash, FingerprintPrefix),
		Fingerprint: r.KeyFingerprint,
		Code:        string(r.ErrorCode),
	}
}

// VerifyOptions tune VerifyOffline.
type VerifyOptions struct {
	// Digest is DigestAny (or "") to accept either convention and report
	// which verified, or DigestSHA256 / DigestGo to require one.
	Digest DigestConvention
	// Now is the time expiry is judged at; zero means time.Now().
	Now time.Time
}

// VerifyInput holds plain values so that the CLI can load them from files
// and a resolver can fetch them over HTTPS. Exactly one of PublicKey,
// PublicKeyPEM and Discovery names the key; with none, the result is
// discovery_invalid, as upstream with a nil discovery document.
type VerifyInput struct {
	// Dir is the skill folder. It is canonicalized unless Root is set, and
	// its .schemapin.sig is read unless Signature or SignatureJSON is set.
	Dir string
	// Root, when set, is a root hash already computed by the caller (the
	// daemon receives it from a client that canonicalized the folder).
	Root *[32]byte
	// Files, with Root, is the folder's manifest the root was computed
	// from. When set, its paths must be the signature's file_manifest
	// paths, and the JavaScript SDK's path order is tried too; with Dir,
	// canonicalization provides it.
	Files map[string]string
	// Unsigned, with Root and Files, is the folder's Manifest.Unsigned
	// (with Dir it is computed here).
	Unsigned []string
	// SignedFiles, when set, is a manifest the caller knows was signed
	// (the daemon's record); the folder's paths must be its paths too.
	SignedFiles map[string]string
	// Signature replaces <Dir>/.schemapin.sig.
	Signature *Signature
	// SignatureJSON replaces <Dir>/.schemapin.sig when Signature is nil;
	// unparseable is signature_invalid, as a bad file.
	SignatureJSON []byte

	// PublicKey is a key the caller already trusts (the daemon's store).
	PublicKey *ecdsa.PublicKey
	// PublicKeyPEM is treated as a discovery document holding only it.
	PublicKeyPEM []byte
	// Discovery is the domain's .well-known/schemapin.json; its
	// revoked_keys and developer_name are used.
	Discovery *Discovery

	// Domain is the domain whose key is used. When both it and the
	// signature's domain are set they must agree (domain_mismatch), which
	// upstream never checks (spec §0.3, §16.4).
	Domain string
	// RevocationJSON is a standalone revocation document. nil means none;
	// anything else that does not parse fails verification (fail closed,
	// unlike upstream Go, spec §9).
	RevocationJSON []byte
	// PinStore, when set, is checked before the signature and updated only
	// after everything else passed (upstream pins first, spec §16.5).
	PinStore *PinStore
	// ToolID keys the pin store; default skill_name, then the folder name.
	ToolID string
	// DNSTXT is a _schemapin TXT value; empty means absent.
	DNSTXT string

	// Options tune the checks.
	Options VerifyOptions
}

// VerifyOffline runs upstream's offline skill verification (spec §6, Go's
// VerifySkillOffline with the DNS step of §6.3) with these differences,
// none of which rejects a signature upstream accepts with the same inputs:
//   - either digest convention verifies by default, and the result says
//     which (spec §4); Options.Digest can require one;
//   - a signature whose domain is set and differs from Domain fails with
//     domain_mismatch;
//   - the TOFU pin is written only after the signature, domain and DNS
//     checks passed;
//   - a revocation document that was given but does not parse fails with
//     discovery_invalid;
//   - warnings flag a skill_hash matching neither convention, a
//     fingerprint-shaped signer_kid naming another key, and non-canonical
//     DER.
//
// The error is non-nil only for unusable input (errdefs.ErrInvalidArgument)
// or a cancelled ctx; every verdict, including failures, is in the Result.
func VerifyOffline(ctx context.Context, in VerifyInput) (*Result, error) {
	want, err := ParseDigestConvention(string(in.Options.Digest))
	if err != nil {
		return nil, fmt.Errorf("verify: %w", err)
	}
	keySources := 0
	for _, set := range []bool{in.PublicKey != nil, in.PublicKeyPEM != nil, in.Discovery != nil} {
		if set {
			keySources++
		}
	}
	if keySources > 1 {
		return nil, fmt.Errorf("verify: give one of public key, public key PEM or discovery document: %w", errdefs.ErrInvalidArgument)
	}
	if in.Dir == "" && (in.Root == nil || (in.Signature == nil && in.SignatureJSON == nil)) {
		return nil, fmt.Errorf("verify: a skill directory, or a root and a signature, is required: %w", errdefs.ErrInvalidArgument)
	}
	now := in.Options.Now
	if now.IsZero() {
		now = time.Now()
	}
	r := &Result{}

	// Step 1: the signature document.
	sig := in.Signature
	if sig == nil {
		var err error
		if in.SignatureJSON != nil {
			sig, err = ParseSignature(in.SignatureJSON)
		} else {
			sig, err = LoadSignature(in.Dir)
		}
		switch {
		case errors.Is(err, errdefs.ErrNotFound):
			return r.fail(CodeSignatureInvalid, errdefs.ReasonSignatureNotFound, "No .schemapin.sig found in skill directory"), nil
		case err != nil:
			return r.fail(CodeSignatureInvalid, errdefs.ReasonMalformedSignature, "Malformed .schemapin.sig: %v", err), nil
		}
	}
	r.Domain = sig.Domain
	r.ToolID = in.ToolID
	if r.ToolID == "" {
		r.ToolID = sig.SkillName
	}
	if r.ToolID == "" && in.Dir != "" {
		if abs, err := filepath.Abs(in.Dir); err == nil {
			r.ToolID = filepath.Base(abs)
		}
	}
	pinDomain := sig.Domain
	if pinDomain == "" {
		pinDomain = in.Domain
	}

	// Step 1a (v1.4α3): only schemapin-v1 canonicalization exists.
	if c := sig.Canonicalization; c != "" && c != CanonicalizationV1 {
		return r.fail(CodeCanonicalizationUnsupported, errdefs.ReasonMalformedSignature, "Unsupported canonicalization algorithm: %s", c), nil
	}

	// Steps 2 and 3: the key and its fingerprint.
	pub := in.PublicKey
	disc := in.Discovery
	if pub == nil && disc == nil && in.PublicKeyPEM != nil {
		disc = &Discovery{PublicKeyPEM: string(in.PublicKeyPEM)}
	}
	if pub == nil {
		if disc == nil || !strings.Contains(disc.PublicKeyPEM, publicKeyMarker) {
			return r.fail(CodeDiscoveryInvalid, errdefs.ReasonUntrustedSigner, "Discovery document missing or invalid public_key_pem"), nil
		}
		pub, err = ParsePublicKeyPEM([]byte(disc.PublicKeyPEM))
		if err != nil {
			return r.fail(CodeKeyNotFound, errdefs.ReasonUntrustedSigner, "Failed to load public key: %v", err), nil
		}
	}
	fp, err := Fingerprint(pub)
	if err != nil {
		return r.fail(CodeKeyNotFound, errdefs.ReasonUntrustedSigner, "Failed to calculate fingerprint: %v", err), nil
	}
	r.KeyFingerprint = fp

	// Step 4: revocation, discovery list first, then the standalone document.
	var rev *RevocationDocument
	if in.RevocationJSON != nil {
		rev, err = ParseRevocation(in.RevocationJSON)
		if err != nil {
			return r.fail(CodeDiscoveryInvalid, errdefs.ReasonUntrustedSigner, "Revocation document unreadable (fail-closed): %v", err), nil
		}
	}
	var simple []string
	if disc != nil {
		simple = disc.RevokedKeys
	}
	if err := CheckRevocation(fp, simple, rev); err != nil {
		return r.fail(CodeKeyRevoked, errdefs.ReasonKeyRevoked, "%s", err.Error()), nil
	}

	// Step 5: TOFU, read-only for now.
	if in.PinStore != nil && in.PinStore.Check(r.ToolID, pinDomain, fp) == PinChanged {
		return r.fail(CodeKeyPinMismatch, errdefs.ReasonUntrustedSigner, "Key fingerprint changed since last use"), nil
	}

	// Step 6a: the root.
	var root [32]byte
	files, unsigned := in.Files, in.Unsigned
	if in.Root != nil {
		root = *in.Root
	} else {
		m, err := Canonicalize(ctx, in.Dir)
		if err != nil {
			if ctx.Err() != nil {
				return nil, err
			}
			r.fail(CodeSchemaCanonicalizationFailed, errdefs.ReasonPackageTampered, "Failed to canonicalize skill: %v", err)
			if errors.Is(err, ErrNonUTF8Name) {
				r.Hint = "a file name in the folder is not valid UTF-8: the SchemaPin SDKs disagree on such names, so no signature can be checked; rename the file"
			}
			return r, nil
		}
		root, files, unsigned = m.Root, m.Files, m.Unsigned
	}
	r.SkillHash = FingerprintPrefix + hex.EncodeToString(root[:])

	// Step 6b: the signature over the root, in the specification's path
	// order, else in the JavaScript SDK's.
	order := PathOrderUTF8
	conv, noncanonical, err := VerifyRootSignature(pub, root, sig.Signature, want)
	// Only the JavaScript SDK sorts paths by UTF-16 code units, and it signs
	// and verifies with the SHA-256 digest convention only: the Go
	// convention over a UTF-16-order root is no SDK's signature.
	if err != nil && files != nil && want != DigestGo {
		if root16, rerr := ComputeRootUTF16(files); rerr == nil && root16 != root {
			if c, nc, err16 := VerifyRootSignature(pub, root16, sig.Signature, DigestSHA256); err16 == nil {
				conv, noncanonical, err, order, root = c, nc, nil, PathOrderUTF16, root16
				r.SkillHash = FingerprintPrefix + hex.EncodeToString(root[:])
			}
		}
	}
	if err != nil {
		if errors.Is(err, ErrSignatureEncoding) {
			return r.fail(CodeSignatureInvalid, errdefs.ReasonMalformedSignature, "Signature verification failed: %v", err), nil
		}
		reason := errdefs.ReasonInvalidSignature
		if signed, err := ComputeRoot(sig.FileManifest); err == nil && signed != root {
			// The folder is not what the manifest describes: report the
			// content change, which signctl skill tampered can itemize.
			reason = errdefs.ReasonPackageTampered
			if files != nil {
				rep := DetectTamperedFiles(files, sig.FileManifest)
				r.Tampered = &rep
			}
		}
		msg := "Signature verification failed"
		if want != DigestAny {
			if other, _, err := VerifyRootSignature(pub, root, sig.Signature, DigestAny); err == nil {
				msg = fmt.Sprintf("%s: the signature uses the %s digest convention, %s is required", msg, other, want)
			}
		}
		return r.fail(CodeSignatureInvalid, reason, "%s", msg), nil
	}

	// File names: the signature cannot see a name sliding into its file's
	// content, so the folder's paths must be the signed manifest's.
	if files != nil {
		if len(sig.FileManifest) == 0 {
			return r.fail(CodeSignatureInvalid, errdefs.ReasonMalformedSignature, "The signature has no file_manifest, so the folder's file names cannot be checked"), nil
		}
		for _, signed := range []struct {
			what  string
			files map[string]string
		}{{"the signature's file_manifest", sig.FileManifest}, {"signerd's record of what it signed", in.SignedFiles}} {
			if len(signed.files) == 0 {
				continue // no record
			}
			if rep := NameReport(files, signed.files); rep != nil {
				r.Tampered = rep
				r.Hint = "the signature verifies, but the folder's file names are not the signed ones: SchemaPin hashes each file as SHA-256(path || content), so a renamed file whose content absorbed the difference keeps the same root"
				return r.fail(CodeSignatureInvalid, errdefs.ReasonPackageTampered, "File names differ from %s: %s", signed.what, rep.Summary()), nil
			}
		}
	}

	// Domain binding: the claim in the signature must name the key's domain.
	if sig.Domain != "" && in.Domain != "" && !sameDomain(sig.Domain, in.Domain) {
		return r.fail(CodeDomainMismatch, errdefs.ReasonUntrustedSigner, "Signature domain %s does not match the domain of the verifying key %s", sig.Domain, in.Domain), nil
	}

	// DNS TXT (spec §6.3): malformed is discovery_invalid, mismatch
	// domain_mismatch.
	if strings.TrimSpace(in.DNSTXT) != "" {
		txt, err := ParseDNSTXT(in.DNSTXT)
		if err != nil {
			return r.fail(CodeDiscoveryInvalid, errdefs.ReasonUntrustedSigner, "Invalid DNS TXT record: %v", err), nil
		}
		if !txt.Matches(fp) {
			return r.fail(CodeDomainMismatch, errdefs.ReasonUntrustedSigner, "DNS TXT fingerprint mismatch: discovery=%s, dns=%s", fp, txt.Fingerprint), nil
		}
	}

	// Everything passed: now, and only now, pin.
	if in.PinStore != nil {
		st := in.PinStore.CheckAndPin(r.ToolID, pinDomain, fp)
		if st == PinChanged { // another verification pinned a different key meanwhile
			return r.fail(CodeKeyPinMismatch, errdefs.ReasonUntrustedSigner, "Key fingerprint changed since last use"), nil
		}
		r.KeyPinning = &KeyPinning{Status: st}
	}

	// Step 7: success, then expiry and lineage as upstream.
	r.Valid = true
	r.DigestConvention = conv
	r.PathOrder = order
	if order == PathOrderUTF16 {
		r.Hint = "verified with paths in UTF-16 code unit order, as the JavaScript SDK sorts them; the specification's UTF-8 byte order gives another root for this folder"
	}
	if disc != nil {
		r.DeveloperName = disc.DeveloperName
	}
	r.Warnings = []string{}
	r.applyExpiration(sig.ExpiresAt, now)
	r.SchemaVersion = sig.SchemaVersion
	r.PreviousHash = sig.PreviousHash
	if _, ok := MatchSkillHash(sig.SkillHash, root); !ok {
		r.Warnings = append(r.Warnings, WarningSkillHashMismatch)
	}
	if IsSHA256Ref(strings.ToLower(sig.SignerKid)) && !strings.EqualFold(sig.SignerKid, fp) {
		r.Warnings = append(r.Warnings, WarningSignerKidMismatch)
	}
	if noncanonical {
		r.Warnings = append(r.Warnings, WarningSignatureEncoding)
	}
	if len(unsigned) > 0 {
		r.Warnings = append(r.Warnings, WarningUnsignedEntries)
		r.Unsigned = unsigned
	}
	return r, nil
}

// applyExpiration is upstream's WithExpirationCheck (spec §6.1): expired
// is a warning, not a failure; an unparseable value is a warning and is
// not mirrored.
func (r *Result) applyExpiration(expiresAt string, now time.Time) {
	if expiresAt == "" {
		return
	}
	t, err := time.Parse(time.RFC3339, expiresAt)
	if err != nil {
		r.Warnings = append(r.Warnings, WarningExpiresAtUnparseable)
		return
	}
	r.ExpiresAt = expiresAt
	if now.After(t) {
		r.Expired = true
		r.Warnings = append(r.Warnings, WarningSignatureExpired)
	}
}

func (r *Result) fail(code ErrorCode, reason errdefs.Reason, format string, args ...any) *Result {
	r.Valid = false
	r.ErrorCode = code
	r.ErrorMessage = fmt.Sprintf(format, args...)
	r.reason = reason
	return r
}

// sameDomain compares DNS names: case-insensitive, one trailing dot ignored.
func sameDomain(a, b string) bool {
	return strings.EqualFold(strings.TrimSuffix(strings.TrimSpace(a), "."), strings.TrimSuffix(strings.TrimSpace(b), "."))
}
