package daemon

import (
	"errors"

	"github.com/signerd/signerd/internal/errdefs"
)

// ExitPINRefused is signerd's exit status when the token refused the PIN at
// start-up (EX_NOPERM in sysexits.h). signerd.service names it in
// RestartPreventExitStatus=, so that systemd does not offer the same PIN
// again on every restart: each refusal counts towards locking the token.
const ExitPINRefused = 77

// exitStatus is a start-up error with its own exit status.
type exitStatus struct {
	code int
	err  error
}

func (e exitStatus) Error() string { return e.err.Error() }
func (e exitStatus) Unwrap() error { return e.err }

// pinRefused marks an error of the first HSM open: the token's refusals
// of the PIN (ErrPermissionDenied from pkcs11.Open) exit ExitPINRefused.
func pinRefused(err error) error {
	if errors.Is(err, errdefs.ErrPermissionDenied) {
		return exitStatus{code: ExitPINRefused, err: err}
	}
	return err
}

// ExitCode is the process exit status for Run's error: 0 without one,
// ExitPINRefused when the token refused the PIN, 1 otherwise.
func ExitCode(err error) int {
	var e exitStatus
	switch {
	case err == nil:
		return 0
	case errors.As(err, &e):
		return e.code
	}
	return 1
}
