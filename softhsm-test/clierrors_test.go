package softhsmtest

import (
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
)

// TestCLIErrors: what a new user trips on, through the real binaries.
// Usage errors exit 2 without the help text; each error is one line that
// names its kind at most once; -o json puts a {code, reason, message}
// object on stdout; a socket the caller may not open is a permission
// problem (exit 4), not "is it running?".
func TestCLIErrors(t *testing.T) {
	d := startDaemon(t)
	dir := t.TempDir()
	missing := filepath.Join(dir, "nosuch.so")
	tests := []struct {
		name   string
		args   []string
		code   int
		stderr string // the whole message after "signctl: "
	}{
		{"mistyped command", []string{"verfy"}, 2, `unknown command "verfy" for "signctl" (did you mean verify?); signctl --help lists the commands`},
		{"unknown subcommand", []string{"key", "frob"}, 2, `unknown command "frob" for "signctl key"; signctl key --help lists the commands`},
		{"unknown key", []string{"key", "public", "nosuch"}, 2, `key "nosuch" does not exist (signctl key list shows the keys)`},
		{"missing file", []string{"sign", missing, "--key", "release"}, 2, "open " + missing + ": no such file or directory"},
		{"missing file offline", []string{"verify", missing, "--trust-key", missing}, 2, "open " + missing + ": no such file or directory"},
		{"no daemon", []string{"--socket", filepath.Join(dir, "none.sock"), "key", "list"}, 3,
			"cannot reach signerd at " + filepath.Join(dir, "none.sock") + ": no such file or directory (is it running? `make run` starts one; --socket or SIGNCTL_SOCKET chooses the socket)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := signctl(t, d, tt.args...)
			if r.code != tt.code || r.stderr != "signctl: "+tt.stderr+"\n" || r.stdout != "" {
				t.Fatalf("exit %d, want %d\nstderr %q\nwant   %q\nstdout %q", r.code, tt.code, r.stderr, "signctl: "+tt.stderr+"\n", r.stdout)
			}
			j := signctl(t, d, append(tt.args, "-o", "json")...)
			var rep struct {
				Code    int    `json:"code"`
				Reason  string `json:"reason"`
				Message string `json:"message"`
			}
			if err := json.Unmarshal([]byte(j.stdout), &rep); err != nil {
				t.Fatalf("-o json: stdout is not an error object: %v: %q", err, j.stdout)
			}
			if j.code != tt.code || rep.Code != tt.code || rep.Message != tt.stderr || rep.Reason == "" {
				t.Errorf("-o json: exit %d, %+v", j.code, rep)
			}
		})
	}

	t.Run("socket permission denied", func(t *testing.T) {
		needRoot(t, "signctl reports a socket it may not open as exit 4 (permission denied), not as an unreachable daemon")
		traversable(t, d.socket) // the directories, not the 0660 root-owned socket
		r := signctlAsNobody(t, d, "key", "list")
		expectExit(t, r, 4, "nobody on a socket it may not open")
		want := "signctl: permission denied: you may not open signerd's socket " + d.socket
		if !strings.HasPrefix(r.stderr, want) || strings.Count(r.stderr, "\n") != 1 ||
			strings.Count(r.stderr, "permission denied") != 1 || strings.Contains(r.stderr, "is it running") {
			t.Errorf("stderr %q, want one line starting %q and saying permission denied once", r.stderr, want)
		}
		j := signctlAsNobody(t, d, "key", "list", "-o", "json")
		var rep map[string]any
		if err := json.Unmarshal([]byte(j.stdout), &rep); err != nil || rep["code"] != float64(4) || rep["reason"] != "PERMISSION_DENIED" {
			t.Errorf("-o json: exit %d %q (%v)", j.code, j.stdout, err)
		}
	})
}
