package server

import (
	"context"
	"errors"
	"log/slog"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/signerd/signerd/internal/errdefs"
)

// ErrorDomain is the ErrorInfo domain of every signerd error.
const ErrorDomain = "signerd.dev"

// ToStatus is the one place domain errors become gRPC statuses. It walks the
// error chain with errors.Is, attaches a google.rpc.ErrorInfo with a stable
// reason, and hides the text of internal errors (logged instead).
func ToStatus(ctx context.Context, log *slog.Logger, err error) error {
	if err == nil {
		return nil
	}
	if _, ok := status.FromError(err); ok {
		return err // already a status (e.g. from the auth interceptor)
	}
	code, reason := classify(err)
	msg := errdefs.ClipMessage(err.Error())
	if code == codes.Internal || code == codes.Unknown {
		log.ErrorContext(ctx, "internal error", "err", errdefs.ClipMessage(err.Error()))
		msg = "internal error; see the signerd log"
	}
	st := status.New(code, msg)
	info := &errdetails.ErrorInfo{Reason: string(reason), Domain: ErrorDomain}
	if v, ok := errdefs.AsVerification(err); ok {
		info.Metadata = map[string]string{"kind": "verification"}
		if v.PackageHash != "" {
			info.Metadata["package_hash"] = v.PackageHash
		}
		if v.Fingerprint != "" {
			info.Metadata["signer_fingerprint"] = v.Fingerprint
		}
		if v.Code != "" {
			info.Metadata["error_code"] = v.Code
		}
	}
	if withInfo, derr := st.WithDetails(info); derr == nil {
		st = withInfo
	}
	return st.Err()
}

// classify maps an error to a code and a reason.
func classify(err error) (codes.Code, errdefs.Reason) {
	if v, ok := errdefs.AsVerification(err); ok {
		switch v.Reason {
		case errdefs.ReasonSignatureNotFound, errdefs.ReasonUnknownOrg:
			return codes.NotFound, v.Reason
		case errdefs.ReasonMalformedSignature:
			return codes.InvalidArgument, v.Reason
		default:
			// Tampered, untrusted, revoked, invalid: the request was fine,
			// the artifact is not acceptable.
			return codes.FailedPrecondition, v.Reason
		}
	}
	specific := errdefs.ReasonOf(err)
	pick := func(c codes.Code, generic errdefs.Reason) (codes.Code, errdefs.Reason) {
		if specific != "" {
			return c, specific
		}
		return c, generic
	}
	switch {
	case errors.Is(err, context.Canceled):
		return codes.Canceled, "CANCELLED"
	case errors.Is(err, context.DeadlineExceeded):
		return codes.DeadlineExceeded, "DEADLINE_EXCEEDED"
	case errors.Is(err, errdefs.ErrInvalidArgument):
		return pick(codes.InvalidArgument, errdefs.ReasonInvalidArgument)
	case errors.Is(err, errdefs.ErrNotFound):
		return pick(codes.NotFound, errdefs.ReasonNotFound)
	case errors.Is(err, errdefs.ErrAlreadyExists):
		return pick(codes.AlreadyExists, errdefs.ReasonAlreadyExists)
	case errors.Is(err, errdefs.ErrFailedPrecondition):
		return pick(codes.FailedPrecondition, errdefs.ReasonFailedPrecondition)
	case errors.Is(err, errdefs.ErrPermissionDenied):
		return pick(codes.PermissionDenied, errdefs.ReasonPermissionDenied)
	case errors.Is(err, errdefs.ErrUnauthenticated):
		return pick(codes.Unauthenticated, "UNAUTHENTICATED")
	case errors.Is(err, errdefs.ErrUnavailable):
		return pick(codes.Unavailable, errdefs.ReasonHSMUnavailable)
	case errors.Is(err, errdefs.ErrResourceExhausted):
		return pick(codes.ResourceExhausted, "RESOURCE_EXHAUSTED")
	}
	return codes.Internal, errdefs.ReasonInternal
}
