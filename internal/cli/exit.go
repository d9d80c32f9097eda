package cli

import (
	"context"
	"errors"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/signerd/signerd/internal/errdefs"
)

// Exit codes (CONTRACT.md): the same meaning for every command.
const (
	ExitOK         = 0
	ExitVerifyFail = 1
	ExitUsage      = 2
	ExitDaemon     = 3
	ExitDenied     = 4
)

// exitError carries an explicit exit code.
type exitError struct {
	code int
	err  error
	// reported is true when the command already printed the failure (e.g.
	// verify's result object), so Main must not print it again.
	reported bool
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

func exitErr(code int, err error) error { return &exitError{code: code, err: err} }

func isReported(err error) bool {
	var e *exitError
	return errors.As(err, &e) && e.reported
}

// exitCode classifies an error for commands that do not verify: bad input
// is 2, the daemon being unreachable or failing is 3, a denial is 4.
func exitCode(err error) int {
	var e *exitError
	if errors.As(err, &e) {
		return e.code
	}
	switch r := errdefs.ReasonOf(err); {
	case r == errdefs.ReasonKeyMismatch, r == errdefs.ReasonKeyNotInToken:
		// A recorded key missing from the token, or another key under its
		// ID: the daemon's state is at fault, not the caller's input.
		return ExitDaemon
	case errors.Is(err, errdefs.ErrPermissionDenied), errors.Is(err, errdefs.ErrUnauthenticated):
		return ExitDenied
	case errors.Is(err, errdefs.ErrUnavailable), errors.Is(err, errdefs.ErrInternal),
		errors.Is(err, context.DeadlineExceeded), errors.Is(err, errdefs.ErrResourceExhausted):
		return ExitDaemon
	case errors.Is(err, errdefs.ErrInvalidArgument), errors.Is(err, errdefs.ErrNotFound),
		errors.Is(err, errdefs.ErrAlreadyExists), errors.Is(err, errdefs.ErrFailedPrecondition):
		return ExitUsage
	}
	if _, ok := errdefs.AsVerification(err); ok {
		return ExitVerifyFail
	}
	return ExitDaemon
}

// exactArgs is cobra.ExactArgs with exit code 2 and a clearer message.
func exactArgs(n int, what string) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) != n {
			return exitErr(ExitUsage, fmt.Errorf("%s takes %s (see %s --help)", cmd.CommandPath(), what, cmd.CommandPath()))
		}
		return nil
	}
}

// required checks that flags were given, naming the missing ones.
func required(cmd *cobra.Command, names ...string) error {
	for _, n := range names {
		if !cmd.Flags().Changed(n) {
			return exitErr(ExitUsage, fmt.Errorf("%s needs --%s (see %s --help)", cmd.CommandPath(), n, cmd.CommandPath()))
		}
	}
	return nil
}

// localExit classifies a failure of local work (reading, hashing or
// writing the caller's files): bad input (2), unless the command was
// stopped (a signal or a deadline), which is not the file's fault.
func localExit(err error) int {
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return ExitDaemon
	}
	return ExitUsage
}
