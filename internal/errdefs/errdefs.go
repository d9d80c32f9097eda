// Package errdefs defines the error kinds shared by every layer of signerd.
//
// Lower layers wrap a kind with context (fmt.Errorf("key %q: %w", name,
// errdefs.ErrNotFound)); upper layers test with errors.Is. Exactly one
// function, in internal/server, turns a kind into a gRPC status, and exactly
// one, in the public client package, turns it back.
//
// Verification refusals are not kinds but a typed error, *VerificationError,
// carrying a stable Reason, because loaders and scripts switch on the reason.
package errdefs

import (
	"errors"
	"fmt"
	"strings"
)

// Error kinds. Each maps to one gRPC code.
var (
	ErrInvalidArgument    = errors.New("invalid argument")
	ErrNotFound           = errors.New("not found")
	ErrAlreadyExists      = errors.New("already exists")
	ErrFailedPrecondition = errors.New("failed precondition")
	ErrPermissionDenied   = errors.New("permission denied")
	ErrUnauthenticated    = errors.New("unauthenticated")
	ErrUnavailable        = errors.New("unavailable")
	ErrResourceExhausted  = errors.New("resource exhausted")
	ErrInternal           = errors.New("internal error")
)

// Reason is a stable, machine-readable cause carried in google.rpc.ErrorInfo
// and printed by signctl. Values never change once released.
type Reason string

// Verification reasons (DESIGN.md, in the order verification reaches them).
const (
	ReasonSignatureNotFound  Reason = "SIGNATURE_NOT_FOUND"
	ReasonMalformedSignature Reason = "MALFORMED_SIGNATURE"
	ReasonPackageTampered    Reason = "PACKAGE_TAMPERED"
	ReasonUntrustedSigner    Reason = "UNTRUSTED_SIGNER"
	ReasonKeyRevoked         Reason = "KEY_REVOKED"
	ReasonInvalidSignature   Reason = "INVALID_SIGNATURE"
	// ReasonUnknownOrg: nobody configured the org (no trust, grant or
	// policy was ever set for it). It is refused rather than treated as an
	// org that trusts nothing and admits unsigned code, so that a loader
	// with a misspelt org fails closed.
	ReasonUnknownOrg Reason = "UNKNOWN_ORG"
)

// Verifiable-log reasons: why a proof of logging or a checkpoint was
// refused (signctl verify --require-proof, signctl log monitor).
const (
	// ReasonMalformedProof: the proof bundle is not one (bad JSON, a
	// missing field, a hash of the wrong size).
	ReasonMalformedProof Reason = "MALFORMED_PROOF"
	// ReasonLogCheckpointInvalid: the checkpoint is not signed by the
	// given log key, or is not a checkpoint of the bundle's log.
	ReasonLogCheckpointInvalid Reason = "LOG_CHECKPOINT_INVALID"
	// ReasonLogProofInvalid: the inclusion proof does not lead from the
	// leaf to the checkpoint's root.
	ReasonLogProofInvalid Reason = "LOG_PROOF_INVALID"
	// ReasonLogLeafMismatch: the proven leaf is not the record of this
	// artifact's digest and this signature.
	ReasonLogLeafMismatch Reason = "LOG_LEAF_MISMATCH"
	// ReasonLogFork: a checkpoint validly signed by the log key that
	// contradicts one accepted before (same size, another root; or no
	// consistency proof to it).
	ReasonLogFork Reason = "LOG_FORK"
	// ReasonLogRollback: a checkpoint of fewer leaves than one accepted
	// before.
	ReasonLogRollback Reason = "LOG_ROLLBACK"
)

// Other reasons attached to non-verification errors.
const (
	ReasonPermissionDenied Reason = "PERMISSION_DENIED"
	ReasonKeyNotFound      Reason = "KEY_NOT_FOUND"
	ReasonKeyExists        Reason = "KEY_EXISTS"
	ReasonWrongAlgorithm   Reason = "WRONG_ALGORITHM"
	ReasonInvalidArgument  Reason = "INVALID_ARGUMENT"
	ReasonNotFound         Reason = "NOT_FOUND"
	ReasonAlreadyExists    Reason = "ALREADY_EXISTS"
	ReasonHSMUnavailable   Reason = "HSM_UNAVAILABLE"
	ReasonKeyMismatch      Reason = "KEY_MISMATCH"
	// ReasonKeyNotInToken: a key signerd recorded is not in the token (it
	// was deleted there, or the token is another one): the service's
	// state, not the caller's input, is at fault.
	ReasonKeyNotInToken      Reason = "KEY_NOT_IN_TOKEN"
	ReasonInternal           Reason = "INTERNAL"
	ReasonFailedPrecondition Reason = "FAILED_PRECONDITION"
)

// VerificationError is a refusal to accept an artifact. It is returned, never
// logged-and-swallowed: a caller that ignores errors cannot mistake it for a
// pass.
type VerificationError struct {
	Reason Reason
	// Message explains the refusal for humans.
	Message string
	// PackageHash is the lowercase hex digest that was checked, when known.
	PackageHash string
	// Fingerprint is the signer's key fingerprint, when known.
	Fingerprint string
	// Code is the format's own error code where it has one (SchemaPin's
	// lowercase codes, e.g. "signature_invalid").
	Code string
}

func (e *VerificationError) Error() string {
	if e.Message == "" {
		return string(e.Reason)
	}
	return e.Message
}

// Is makes errors.Is(err, ErrSignatureNotFound) and friends work with any
// VerificationError of the same reason.
func (e *VerificationError) Is(target error) bool {
	t, ok := target.(*VerificationError)
	return ok && t.Reason == e.Reason && t.Message == "" && t.PackageHash == "" && t.Fingerprint == "" && t.Code == ""
}

// Sentinels for errors.Is on verification outcomes.
var (
	ErrSignatureNotFound  = &VerificationError{Reason: ReasonSignatureNotFound}
	ErrMalformedSignature = &VerificationError{Reason: ReasonMalformedSignature}
	ErrPackageTampered    = &VerificationError{Reason: ReasonPackageTampered}
	ErrUntrustedSigner    = &VerificationError{Reason: ReasonUntrustedSigner}
	ErrKeyRevoked         = &VerificationError{Reason: ReasonKeyRevoked}
	ErrInvalidSignature   = &VerificationError{Reason: ReasonInvalidSignature}
	ErrUnknownOrg         = &VerificationError{Reason: ReasonUnknownOrg}
)

// Verification builds a *VerificationError with a formatted message.
func Verification(reason Reason, format string, args ...any) *VerificationError {
	return &VerificationError{Reason: reason, Message: fmt.Sprintf(format, args...)}
}

// AsVerification returns the *VerificationError in err's chain, if any.
func AsVerification(err error) (*VerificationError, bool) {
	var v *VerificationError
	if errors.As(err, &v) {
		return v, true
	}
	return nil, false
}

// ReasonError attaches a specific Reason to an error kind, so that the wire
// carries e.g. KEY_NOT_FOUND rather than the generic NOT_FOUND.
type ReasonError struct {
	Reason Reason
	Err    error
}

func (e *ReasonError) Error() string { return e.Err.Error() }
func (e *ReasonError) Unwrap() error { return e.Err }

// WithReason wraps err so that its reason on the wire is r.
func WithReason(r Reason, err error) error {
	if err == nil {
		return nil
	}
	return &ReasonError{Reason: r, Err: err}
}

// ReasonOf returns the most specific reason in err's chain, or "" if none.
func ReasonOf(err error) Reason {
	if v, ok := AsVerification(err); ok {
		return v.Reason
	}
	var r *ReasonError
	if errors.As(err, &r) {
		return r.Reason
	}
	return ""
}

// sentenceError is a complete sentence of a given kind: its text does not
// end with the kind's own text, which would only repeat what it says.
type sentenceError struct {
	msg  string
	kind error
}

func (e *sentenceError) Error() string { return e.msg }
func (e *sentenceError) Unwrap() error { return e.kind }

// Sentence returns an error of kind (errors.Is(err, kind) holds) whose text
// is the formatted sentence alone, without ": <kind>" appended. Use it when
// the sentence already says what went wrong and what to do.
func Sentence(kind error, format string, args ...any) error {
	return &sentenceError{msg: fmt.Sprintf(format, args...), kind: kind}
}

// kinds are the error kinds whose text TrimKindOf removes.
var kinds = []error{ErrInvalidArgument, ErrNotFound, ErrAlreadyExists, ErrFailedPrecondition, ErrPermissionDenied,
	ErrUnauthenticated, ErrUnavailable, ErrResourceExhausted, ErrInternal}

// TrimKindOf removes a trailing ": <kind>" from err's text for a person to
// read: the sentence before it already says what went wrong, and the kind,
// which programs test with errors.Is, would only repeat it. Only a kind
// err is: an operating-system error whose text happens to be a kind's
// ("permission denied" for EACCES) is the cause, and stays.
func TrimKindOf(err error) string {
	msg := err.Error()
	for _, k := range kinds {
		if t, ok := strings.CutSuffix(msg, ": "+k.Error()); ok && t != "" && errors.Is(err, k) {
			return t
		}
	}
	return msg
}
