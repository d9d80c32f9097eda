package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"regexp"
	"strings"

	"github.com/spf13/cobra"

	"github.com/signerd/signerd/internal/errdefs"
)

// errorReport is what signctl says about a failed command: the exit code,
// a stable reason and one sentence. With -o json it is also printed on
// stdout, so that a script reading stdout always gets an object.
type errorReport struct {
	Code    int    `json:"code"`
	Reason  string `json:"reason"`
	Message string `json:"message"`
}

// kinds are the errdefs kinds whose text every layer appends with %w: the
// kind decides the exit code, but repeated in the message it only adds
// "not found: not found".
var kinds = []error{
	errdefs.ErrInvalidArgument, errdefs.ErrNotFound, errdefs.ErrAlreadyExists,
	errdefs.ErrFailedPrecondition, errdefs.ErrPermissionDenied, errdefs.ErrUnauthenticated,
	errdefs.ErrUnavailable, errdefs.ErrResourceExhausted, errdefs.ErrInternal,
}

// describe classifies err for the user: exit code, reason and message.
func describe(err error) errorReport {
	code := exitCode(err)
	reason := string(errdefs.ReasonOf(err))
	if reason == "" {
		reason = kindReason(err, code)
	}
	msg := oneSentence(err.Error())
	// The daemon's refusal names the caller and the rule; the kind, which
	// oneSentence drops as noise elsewhere, is the point of it here.
	if code == ExitDenied && !strings.Contains(strings.ToLower(msg), "permission denied") {
		msg = "permission denied: " + msg
	}
	return errorReport{Code: code, Reason: reason, Message: msg}
}

// kindReason names an error that carries no reason of its own.
func kindReason(err error, code int) string {
	for _, k := range []struct {
		err    error
		reason errdefs.Reason
	}{
		{errdefs.ErrInvalidArgument, errdefs.ReasonInvalidArgument},
		{errdefs.ErrNotFound, errdefs.ReasonNotFound},
		{errdefs.ErrAlreadyExists, errdefs.ReasonAlreadyExists},
		{errdefs.ErrFailedPrecondition, errdefs.ReasonFailedPrecondition},
		{errdefs.ErrPermissionDenied, errdefs.ReasonPermissionDenied},
		{errdefs.ErrUnauthenticated, errdefs.ReasonPermissionDenied},
		{errdefs.ErrUnavailable, "UNAVAILABLE"},
		{errdefs.ErrResourceExhausted, "RESOURCE_EXHAUSTED"},
		{context.DeadlineExceeded, "DEADLINE_EXCEEDED"},
		{errdefs.ErrInternal, errdefs.ReasonInternal},
	} {
		if errors.Is(err, k.err) {
			return string(k.reason)
		}
	}
	if code == ExitUsage {
		return "USAGE"
	}
	return string(errdefs.ReasonInternal)
}

// oneSentence turns a wrapped error's text into one readable sentence:
// a part repeated by two layers is said once ("not found: not found",
// "open x: invalid argument: open x: no such file or directory"), and the
// kind names that layers append with %w are dropped — except at the end
// right after an operating-system operation ("connect: permission
// denied"), where the words are the system's own error.
func oneSentence(msg string) string {
	parts := strings.Split(strings.TrimSpace(msg), ": ")
	out := make([]string, 0, len(parts))
	push := func(p string) {
		if len(out) == 0 || out[len(out)-1] != p {
			out = append(out, p)
		}
	}
	for i, p := range parts {
		if isKindText(p) && len(out) > 0 && !(isOSOperation(out[len(out)-1]) && onlyRepeats(parts[i+1:], p)) {
			continue
		}
		// "…: invalid argument; what to do" keeps the advice, not the kind.
		if k, rest, ok := strings.Cut(p, "; "); ok && isKindText(k) && len(out) > 0 {
			out[len(out)-1] += "; " + rest
			continue
		}
		push(p)
	}
	if len(out) == 0 {
		return strings.TrimSpace(msg)
	}
	return strings.Join(out, ": ")
}

// osOperations start the text of *fs.PathError, *os.SyscallError and
// *net.OpError: what follows them is the system's error message.
var osOperations = []string{"open ", "stat ", "lstat ", "read ", "write ", "mkdir ", "remove ", "rename ", "dial ", "connect", "chmod "}

// onlyRepeats reports whether every one of rest is p: p ends the message.
func onlyRepeats(rest []string, p string) bool {
	for _, r := range rest {
		if r != p {
			return false
		}
	}
	return true
}

func isOSOperation(s string) bool {
	for _, op := range osOperations {
		if s == strings.TrimSpace(op) || strings.HasPrefix(s, op) {
			return true
		}
	}
	return false
}

func isKindText(s string) bool {
	for _, k := range kinds {
		if s == k.Error() {
			return true
		}
	}
	return false
}

// unknownSubcommand makes a command group refuse what is not one of its
// commands (exit 2) instead of printing its help and succeeding; with no
// argument it still prints its help.
func unknownSubcommand(root *cobra.Command) {
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		if c.HasSubCommands() && c != root && c.Run == nil && c.RunE == nil {
			c.Args = cobra.ArbitraryArgs
			c.RunE = func(cmd *cobra.Command, args []string) error {
				if len(args) == 0 {
					return cmd.Help()
				}
				return exitErr(ExitUsage, unknownCommand(cmd, args[0]))
			}
		}
		for _, sub := range c.Commands() {
			walk(sub)
		}
	}
	walk(root)
}

// unknownCommand is cobra's "unknown command" on one line, with its
// suggestions.
func unknownCommand(cmd *cobra.Command, name string) error {
	msg := fmt.Sprintf("unknown command %q for %q", name, cmd.CommandPath())
	if cmd.SuggestionsMinimumDistance <= 0 {
		cmd.SuggestionsMinimumDistance = 2 // cobra's own default, set lazily
	}
	if s := cmd.SuggestionsFor(name); len(s) > 0 {
		msg += " (did you mean " + strings.Join(s, " or ") + "?)"
	}
	return fmt.Errorf("%s; %s --help lists the commands", msg, cmd.CommandPath())
}

// cobraUnknown is the error cobra returns for a mistyped command.
var cobraUnknown = regexp.MustCompile(`^unknown command "([^"]*)" for`)

// usageFromCobra recognises the errors cobra itself returns for the root
// command (a mistyped command) as usage errors.
func usageFromCobra(root *cobra.Command, err error) error {
	var e *exitError
	if errors.As(err, &e) {
		return err
	}
	if m := cobraUnknown.FindStringSubmatch(err.Error()); m != nil {
		return exitErr(ExitUsage, unknownCommand(root, m[1]))
	}
	return err
}

// wantsJSON reports whether -o json was asked for, reading args when
// cobra failed before parsing the flags (a mistyped command).
func wantsJSON(root *cobra.Command, args []string) bool {
	if f := root.PersistentFlags().Lookup("output"); f != nil && f.Changed {
		return f.Value.String() == "json"
	}
	for i, a := range args {
		switch {
		case a == "--":
			return false
		case a == "-ojson", a == "-o=json", a == "--output=json":
			return true
		case (a == "-o" || a == "--output") && i+1 < len(args):
			if args[i+1] == "json" {
				return true
			}
		}
	}
	return false
}

// printReport writes the failure: one line on stderr and, with -o json,
// the report object on stdout.
func printReport(stdout, stderr io.Writer, r errorReport, asJSON bool) {
	printf(stderr, "signctl: %s\n", r.Message)
	if asJSON {
		_ = printJSON(stdout, r)
	}
}
