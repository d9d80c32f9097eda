package skill

import "github.com/signerd/signerd/internal/errdefs"

// ErrorCode is an upstream verification error code. The strings are the
// lowercase spelling of the Go, Python and JavaScript SDKs (spec §13); Rust's
// UPPER_SNAKE spelling is not used on the wire of the result JSON.
type ErrorCode string

// Error codes emitted by VerifyOffline, in the order the flow can reach them
// (spec §6, §13). DiscoveryFetchFailed is never produced by this package (it
// does no I/O beyond the skill folder) but is defined for resolvers that
// fetch discovery documents and want to report in the same vocabulary.
const (
	CodeSignatureInvalid             ErrorCode = "signature_invalid"
	CodeCanonicalizationUnsupported  ErrorCode = "canonicalization_unsupported"
	CodeDiscoveryInvalid             ErrorCode = "discovery_invalid"
	CodeKeyNotFound                  ErrorCode = "key_not_found"
	CodeKeyRevoked                   ErrorCode = "key_revoked"
	CodeKeyPinMismatch               ErrorCode = "key_pin_mismatch"
	CodeSchemaCanonicalizationFailed ErrorCode = "schema_canonicalization_failed"
	CodeDomainMismatch               ErrorCode = "domain_mismatch"
	CodeDiscoveryFetchFailed         ErrorCode = "discovery_fetch_failed"
)

// Warnings attached to a valid result. The first two are upstream's (spec
// §6.1); the others are ours and never turn a valid upstream signature into
// a failure.
const (
	// WarningSignatureExpired: expires_at is in the past. The result stays
	// valid, as upstream (spec §6.1): expiry is advisory because expires_at is
	// not covered by the signature (spec §0.3).
	WarningSignatureExpired = "signature_expired"
	// WarningExpiresAtUnparseable: expires_at is not RFC 3339 (fail-open, as
	// upstream Go).
	WarningExpiresAtUnparseable = "signature_expires_at_unparseable"
	// WarningSkillHashMismatch: skill_hash is neither "sha256:"+hex(root)
	// (Go/Python/JS) nor "sha256:"+hex(SHA-256(root)) (Rust, spec §0.2). No
	// upstream verifier checks it, so it cannot fail verification, but a
	// previous_hash chain built from it will not link.
	WarningSkillHashMismatch = "skill_hash_mismatch"
	// WarningSignerKidMismatch: signer_kid has the shape of a fingerprint but
	// names a different key than the one that verified. signer_kid is free
	// text upstream (spec §5.1), so only the fingerprint shape is compared.
	WarningSignerKidMismatch = "signer_kid_mismatch"
	// WarningSignatureEncoding: the DER signature carries trailing bytes or is
	// otherwise not canonical DER. Upstream Go's asn1.Unmarshal accepts it
	// (spec §2), so we accept it too and say so.
	WarningSignatureEncoding = "signature_der_noncanonical"
	// WarningUnsignedEntries: the folder holds entries the signature does
	// not cover (Manifest.Unsigned): symlinks and .schemapin.sig files
	// below the top level, which every SDK leaves out (spec §3.1), and
	// FIFOs, sockets or devices, which Rust and signerd skip (spec §3.3).
	// They verify whatever they are or point to; a loader that follows a
	// symlink runs what no one signed.
	WarningUnsignedEntries = "unsigned_entries"
)

// Reason maps an upstream error code to the stable gRPC reason of
// errdefs. The mapping is coarse on purpose; Result.Err refines
// signature_invalid into SIGNATURE_NOT_FOUND, MALFORMED_SIGNATURE,
// PACKAGE_TAMPERED or INVALID_SIGNATURE when it knows which one happened.
func (c ErrorCode) Reason() errdefs.Reason {
	switch c {
	case CodeSignatureInvalid:
		return errdefs.ReasonInvalidSignature
	case CodeCanonicalizationUnsupported:
		return errdefs.ReasonMalformedSignature
	case CodeKeyRevoked:
		return errdefs.ReasonKeyRevoked
	case CodeSchemaCanonicalizationFailed:
		return errdefs.ReasonPackageTampered
	case CodeDiscoveryInvalid, CodeKeyNotFound, CodeKeyPinMismatch,
		CodeDomainMismatch, CodeDiscoveryFetchFailed:
		return errdefs.ReasonUntrustedSigner
	default:
		return errdefs.ReasonInvalidSignature
	}
}
