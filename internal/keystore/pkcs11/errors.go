//go:build cgo

package pkcs11

import (
	"context"
	"errors"
	"fmt"

	p11 "github.com/miekg/pkcs11"

	"github.com/signerd/signerd/internal/errdefs"
)

// errClass groups PKCS#11 failures by what repairs them.
type errClass int

const (
	classOther   errClass = iota // not repairable here
	classSession                 // the session is gone: replace it
	classLogin                   // the application is logged out: log in
	classHandle                  // a cached object handle is stale: find again
	classDevice                  // the token or library is gone: report unavailable
	classPIN                     // the PIN is wrong, locked or expired: never retry
	numClasses
)

func (c errClass) String() string {
	return [...]string{"other", "session", "login", "handle", "device", "pin"}[c]
}

// repairable reports whether withRecovery may repair c and try again.
func (c errClass) repairable() bool {
	return c == classSession || c == classLogin || c == classHandle
}

// errPoolTimeout is returned by our session pool when PoolWaitTimeout passes.
var errPoolTimeout = errors.New("timed out waiting for a free PKCS#11 session")

func classify(err error) errClass {
	var rv p11.Error
	if !errors.As(err, &rv) {
		return classOther
	}
	switch rv {
	case p11.CKR_SESSION_HANDLE_INVALID, p11.CKR_SESSION_CLOSED:
		return classSession
	case p11.CKR_USER_NOT_LOGGED_IN:
		return classLogin
	case p11.CKR_OBJECT_HANDLE_INVALID, p11.CKR_KEY_HANDLE_INVALID:
		return classHandle
	case p11.CKR_DEVICE_ERROR, p11.CKR_DEVICE_REMOVED, p11.CKR_DEVICE_MEMORY,
		p11.CKR_TOKEN_NOT_PRESENT, p11.CKR_TOKEN_NOT_RECOGNIZED, p11.CKR_SLOT_ID_INVALID,
		p11.CKR_CRYPTOKI_NOT_INITIALIZED, p11.CKR_GENERAL_ERROR:
		return classDevice
	case p11.CKR_PIN_INCORRECT, p11.CKR_PIN_LOCKED, p11.CKR_PIN_EXPIRED, p11.CKR_PIN_INVALID,
		p11.CKR_PIN_LEN_RANGE, p11.CKR_USER_PIN_NOT_INITIALIZED:
		return classPIN
	}
	return classOther
}

// kinds are the errdefs kinds; an error already carrying one keeps it.
var kinds = []error{
	errdefs.ErrInvalidArgument, errdefs.ErrNotFound, errdefs.ErrAlreadyExists,
	errdefs.ErrFailedPrecondition, errdefs.ErrPermissionDenied, errdefs.ErrUnauthenticated,
	errdefs.ErrUnavailable, errdefs.ErrResourceExhausted, errdefs.ErrInternal,
}

func hasKind(err error) bool {
	for _, k := range kinds {
		if errors.Is(err, k) {
			return true
		}
	}
	return false
}

// unavailable builds the HSM_UNAVAILABLE error for token label.
func unavailable(op, label string, err error) error {
	return errdefs.WithReason(errdefs.ReasonHSMUnavailable,
		fmt.Errorf("%s: PKCS#11 token %q unavailable: %w: %w", op, label, err, errdefs.ErrUnavailable))
}

// pinError maps the PIN class to ErrPermissionDenied. The message names the
// token, never the PIN.
func pinError(label string, rv p11.Error) error {
	switch rv {
	case p11.CKR_PIN_INCORRECT:
		return fmt.Errorf("PIN incorrect for token %q (%w); not retried: %w", label, rv, errdefs.ErrPermissionDenied)
	case p11.CKR_PIN_LOCKED:
		return fmt.Errorf("PIN locked for token %q (%w); the security officer must unlock it: %w", label, rv, errdefs.ErrPermissionDenied)
	case p11.CKR_PIN_EXPIRED:
		return fmt.Errorf("PIN expired for token %q (%w); change it before use: %w", label, rv, errdefs.ErrPermissionDenied)
	case p11.CKR_USER_PIN_NOT_INITIALIZED:
		return fmt.Errorf("token %q has no user PIN (%w); initialise it (signerd init-token): %w", label, rv, errdefs.ErrFailedPrecondition)
	}
	return fmt.Errorf("PIN refused by token %q (%w): %w", label, rv, errdefs.ErrPermissionDenied)
}

// toKind gives err, returned by operation op on token label, an errdefs
// kind. Errors that already carry one only gain the op prefix.
func toKind(op, label string, err error) error {
	if err == nil {
		return nil
	}
	if hasKind(err) {
		return fmt.Errorf("%s: %w", op, err)
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("%s: %w", op, err)
	}
	if errors.Is(err, errPoolTimeout) {
		return fmt.Errorf("%s: token %q: all sessions busy: %w: %w", op, label, err, errdefs.ErrResourceExhausted)
	}
	var rv p11.Error
	if !errors.As(err, &rv) {
		// Errors of our own making without a kind.
		return fmt.Errorf("%s: token %q: %w: %w", op, label, err, errdefs.ErrInternal)
	}
	switch c := classify(err); c {
	case classDevice, classSession, classLogin, classHandle:
		// Session, login and handle errors only get here when repairing
		// them failed: the token is not usable right now.
		return unavailable(op, label, err)
	case classPIN:
		return fmt.Errorf("%s: %w", op, pinError(label, rv))
	}
	switch rv {
	case p11.CKR_MECHANISM_INVALID, p11.CKR_MECHANISM_PARAM_INVALID, p11.CKR_KEY_TYPE_INCONSISTENT,
		p11.CKR_KEY_FUNCTION_NOT_PERMITTED, p11.CKR_CURVE_NOT_SUPPORTED, p11.CKR_DOMAIN_PARAMS_INVALID:
		return fmt.Errorf("%s: token %q cannot do this: %w: %w", op, label, err, errdefs.ErrFailedPrecondition)
	case p11.CKR_TEMPLATE_INCONSISTENT, p11.CKR_TEMPLATE_INCOMPLETE, p11.CKR_ATTRIBUTE_VALUE_INVALID,
		p11.CKR_DATA_LEN_RANGE, p11.CKR_DATA_INVALID:
		return fmt.Errorf("%s: token %q: %w: %w", op, label, err, errdefs.ErrInvalidArgument)
	case p11.CKR_ATTRIBUTE_SENSITIVE, p11.CKR_USER_TYPE_INVALID:
		return fmt.Errorf("%s: token %q: %w: %w", op, label, err, errdefs.ErrPermissionDenied)
	}
	return fmt.Errorf("%s: token %q: %w: %w", op, label, err, errdefs.ErrInternal)
}
