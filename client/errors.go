package client

import (
	"errors"
	"fmt"

	"github.com/signerd/signerd/internal/errdefs"
)

// VerificationError is a refusal to load an artifact: its Reason is the
// stable cause signerd sent in google.rpc.ErrorInfo. Match it with
// errors.Is against the Err* sentinels below, or errors.As for the fields.
// It is an alias so that the daemon, signctl and loaders share one type.
type VerificationError = errdefs.VerificationError

// Reason is a stable, machine-readable refusal cause (ErrorInfo.reason).
type Reason = errdefs.Reason

// Refusal reasons a loader sees from Verify and OpenVerified.
const (
	ReasonPackageTampered    = errdefs.ReasonPackageTampered
	ReasonUntrustedSigner    = errdefs.ReasonUntrustedSigner
	ReasonKeyRevoked         = errdefs.ReasonKeyRevoked
	ReasonSignatureNotFound  = errdefs.ReasonSignatureNotFound
	ReasonMalformedSignature = errdefs.ReasonMalformedSignature
	ReasonInvalidSignature   = errdefs.ReasonInvalidSignature
	// ReasonUnknownOrg: nobody configured the org (no trust, grant or
	// policy was ever set for it), so nothing it could load is known.
	ReasonUnknownOrg = errdefs.ReasonUnknownOrg
)

// Refusals, one per reason; errors.Is(err, ErrTampered) is true for any
// refusal with that reason, whatever its message.
var (
	ErrTampered           = errdefs.ErrPackageTampered
	ErrUntrustedSigner    = errdefs.ErrUntrustedSigner
	ErrKeyRevoked         = errdefs.ErrKeyRevoked
	ErrSignatureNotFound  = errdefs.ErrSignatureNotFound
	ErrMalformedSignature = errdefs.ErrMalformedSignature
	ErrInvalidSignature   = errdefs.ErrInvalidSignature
	ErrUnknownOrg         = errdefs.ErrUnknownOrg
)

// Error kinds of everything that is not a verdict. Every error this
// package returns wraps one of them (or is a *VerificationError).
var (
	// ErrUnavailable: signerd is not running, not listening where the
	// client looked, or is shutting down.
	ErrUnavailable = errdefs.ErrUnavailable
	// ErrPermissionDenied: the caller may not open signerd's socket, or
	// signerd's policy does not let it make the call.
	ErrPermissionDenied = errdefs.ErrPermissionDenied
	// ErrInvalidArgument: bad input (a missing org, an unreadable file).
	ErrInvalidArgument = errdefs.ErrInvalidArgument
	// ErrNotFound: a key or record that does not exist.
	ErrNotFound = errdefs.ErrNotFound
	// ErrInternal: signerd failed, or answered something this client
	// does not understand; nothing may be loaded.
	ErrInternal = errdefs.ErrInternal
)

// Errors of OpenVerified about the file itself.
var (
	// ErrNotRegularFile: the path names a directory, FIFO, socket or
	// device. Only regular files are hashed and loaded.
	ErrNotRegularFile = fmt.Errorf("not a regular file: %w", errdefs.ErrInvalidArgument)
	// ErrFileChanged: the file's size or modification time changed while
	// it was hashed, or it held more or fewer bytes than its size said
	// (as files in /proc do); the digest proves nothing about it.
	ErrFileChanged = fmt.Errorf("file changed while it was hashed: %w", errdefs.ErrFailedPrecondition)
)

// IsRefusal reports whether err is a verdict (any *VerificationError)
// rather than a failure to ask.
func IsRefusal(err error) bool {
	var v *VerificationError
	return errors.As(err, &v)
}
