package cli

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"
	"testing"

	"github.com/signerd/signerd/internal/errdefs"
)

func TestOneSentence(t *testing.T) {
	pathErr := &fs.PathError{Op: "open", Path: "nosuch.so", Err: errors.New("no such file or directory")}
	tests := []struct {
		name string
		err  error
		want string
	}{
		{"kind repeated by client and server",
			fmt.Errorf("%s: %w", `key "x" does not exist: not found`, errdefs.ErrNotFound),
			`key "x" does not exist`},
		{"file error wrapped twice",
			fmt.Errorf("open %s: %w", "nosuch.so", fmt.Errorf("%w: %w", errdefs.ErrInvalidArgument, pathErr)),
			"open nosuch.so: no such file or directory"},
		{"failed precondition twice",
			fmt.Errorf("%s: %w", "failed precondition", errdefs.ErrFailedPrecondition),
			"failed precondition"},
		{"only a kind", errdefs.ErrNotFound, "not found"},
		{"the system's own words stay", errors.New("dial unix /s: connect: permission denied: permission denied"), "dial unix /s: connect: permission denied"},
		{"kind before advice",
			errors.New("--revocation r.json: revocation: no fingerprint: invalid argument; a revocation document that cannot be read never counts as empty"),
			"--revocation r.json: revocation: no fingerprint; a revocation document that cannot be read never counts as empty"},
		{"kind words inside a sentence stay", errors.New("signature not found for this file"), "signature not found for this file"},
		{"plain", errors.New("-o must be text or json"), "-o must be text or json"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := oneSentence(tt.err.Error()); got != tt.want {
				t.Errorf("oneSentence(%q) = %q, want %q", tt.err.Error(), got, tt.want)
			}
		})
	}
}

func TestDescribe(t *testing.T) {
	tests := []struct {
		name         string
		err          error
		code         int
		reason, want string
	}{
		{"socket permission denied (the client's error)",
			errdefs.WithReason(errdefs.ReasonPermissionDenied, fmt.Errorf("permission denied: you may not open signerd's socket /run/s.sock (ask): %w", errdefs.ErrPermissionDenied)),
			ExitDenied, "PERMISSION_DENIED", "permission denied: you may not open signerd's socket /run/s.sock (ask)"},
		{"a refusal by the daemon says what it is",
			errdefs.WithReason(errdefs.ReasonPermissionDenied, fmt.Errorf("uid:65534 may not call Sign (needs role signer): %w", errdefs.ErrPermissionDenied)),
			ExitDenied, "PERMISSION_DENIED", "permission denied: uid:65534 may not call Sign (needs role signer)"},
		{"no socket (the client's error)",
			fmt.Errorf("cannot reach signerd at /tmp/x.sock: no such file or directory (is it running?): %w", errdefs.ErrUnavailable),
			ExitDaemon, "UNAVAILABLE", "cannot reach signerd at /tmp/x.sock: no such file or directory (is it running?)"},
		{"reason kept", errdefs.WithReason(errdefs.ReasonKeyNotFound, fmt.Errorf("key: %w", errdefs.ErrNotFound)),
			ExitUsage, "KEY_NOT_FOUND", "key"},
		// The token has lost a key signerd recorded, or holds another one
		// under its ID: the daemon's state, exit 3, whatever the kind.
		{"key not in the token", errdefs.WithReason(errdefs.ReasonKeyNotInToken, fmt.Errorf("key 01 not found in token \"t\": %w", errdefs.ErrNotFound)),
			ExitDaemon, "KEY_NOT_IN_TOKEN", "key 01 not found in token \"t\""},
		{"another key in the token", errdefs.WithReason(errdefs.ReasonKeyMismatch, fmt.Errorf("key 01 in token \"t\": private key does not match the public key: %w", errdefs.ErrFailedPrecondition)),
			ExitDaemon, "KEY_MISMATCH", "key 01 in token \"t\": private key does not match the public key"},
		{"kind named", fmt.Errorf("bad: %w", errdefs.ErrInvalidArgument), ExitUsage, "INVALID_ARGUMENT", "bad"},
		{"usage", exitErr(ExitUsage, errors.New("signctl sign needs --key")), ExitUsage, "USAGE", "signctl sign needs --key"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := describe(tt.err)
			if r.Code != tt.code || r.Reason != tt.reason || r.Message != tt.want {
				t.Errorf("describe = %+v, want code %d reason %s message %q", r, tt.code, tt.reason, tt.want)
			}
		})
	}
}

// TestUsageErrors: a mistyped command and an unknown subcommand are usage
// errors (exit 2) that print one line, not the help; with -o json the
// report is on stdout.
func TestUsageErrors(t *testing.T) {
	tests := []struct {
		args       []string
		code       int
		stderr     string
		jsonStdout bool
	}{
		{[]string{"verfy"}, ExitUsage, `unknown command "verfy" for "signctl" (did you mean verify?)`, false},
		{[]string{"key", "frob"}, ExitUsage, `unknown command "frob" for "signctl key"`, false},
		{[]string{"trust", "frob", "-o", "json"}, ExitUsage, `unknown command "frob" for "signctl trust"`, true},
		{[]string{"skill", "verfy"}, ExitUsage, `(did you mean verify?)`, false},
		{[]string{"sign", "--bogus"}, ExitUsage, "unknown flag: --bogus", false},
		{[]string{"key"}, ExitOK, "", false},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			code := Main(t.Context(), tt.args, &stdout, &stderr)
			if code != tt.code {
				t.Fatalf("exit %d, want %d\nstdout: %s\nstderr: %s", code, tt.code, stdout.String(), stderr.String())
			}
			if tt.code == ExitOK {
				if !strings.Contains(stdout.String(), "Available Commands") {
					t.Errorf("a bare group prints no help: %s", stdout.String())
				}
				return
			}
			if !strings.Contains(stderr.String(), tt.stderr) || strings.Count(stderr.String(), "\n") != 1 {
				t.Errorf("stderr %q, want one line containing %q", stderr.String(), tt.stderr)
			}
			if !tt.jsonStdout {
				if stdout.Len() != 0 {
					t.Errorf("stdout not empty: %s", stdout.String())
				}
				return
			}
			var r errorReport
			if err := json.Unmarshal(stdout.Bytes(), &r); err != nil || r.Code != ExitUsage || r.Reason != "USAGE" || !strings.Contains(r.Message, "frob") {
				t.Errorf("stdout %q: %+v %v", stdout.String(), r, err)
			}
		})
	}
}

// TestJSONErrorOffline: an unreadable file under -o json, offline (no
// daemon): the report object on stdout, the sentence on stderr.
func TestJSONErrorOffline(t *testing.T) {
	var stdout, stderr bytes.Buffer
	missing := t.TempDir() + "/nosuch.so"
	code := Main(t.Context(), []string{"verify", missing, "--trust-key", missing + ".pem", "-o", "json"}, &stdout, &stderr)
	if code != ExitUsage {
		t.Fatalf("exit %d\n%s%s", code, stdout.String(), stderr.String())
	}
	var r map[string]any
	if err := json.Unmarshal(stdout.Bytes(), &r); err != nil {
		t.Fatalf("stdout is not a JSON object: %v: %q", err, stdout.String())
	}
	if r["code"] != float64(ExitUsage) || r["reason"] == "" || r["message"] == "" {
		t.Errorf("report %v", r)
	}
	if _, err := os.Stat(missing); !os.IsNotExist(err) {
		t.Error("a file appeared")
	}
}

func TestCount(t *testing.T) {
	for _, tt := range []struct {
		n    int
		want string
	}{{0, "0 checkpoints"}, {1, "1 checkpoint"}, {2, "2 checkpoints"}} {
		if got := count(tt.n, "checkpoint"); got != tt.want {
			t.Errorf("count(%d) = %q, want %q", tt.n, got, tt.want)
		}
	}
}
