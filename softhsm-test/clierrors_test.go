package softhsmtest

import (
	"bytes"
	"encoding/json"
	"errors"
	"io/fs"
	"os"
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

// TestCLILocalWorkAndOutputs: --timeout is how long to wait for the
// daemon, not how long hashing the caller's files may take (a 1 ns
// timeout used to refuse any file as bad input); a signature that could
// not be written is refused before the HSM signs it, so no signature is
// recorded and lost.
func TestCLILocalWorkAndOutputs(t *testing.T) {
	d := startDaemon(t)
	dir := t.TempDir()
	mustSignctl(t, d, "key", "create", "release", "--algorithm", "ed25519")
	pkg := writeFile(t, dir, "pkg.so", bytes.Repeat([]byte("signerd"), 1<<20)) // several reads
	mustSignctl(t, d, "sign", pkg, "--key", "release")
	pub := writeFile(t, dir, "release.pem", []byte(mustSignctl(t, d, "key", "public", "release").stdout))
	skillDir := filepath.Join(dir, "skill")
	if err := os.Mkdir(skillDir, 0o755); err != nil {
		t.Fatal(err)
	}
	writeFile(t, skillDir, "SKILL.md", []byte("---\nname: s\n---\n"))

	t.Run("local work is not bounded by --timeout", func(t *testing.T) {
		for _, args := range [][]string{
			{"--timeout", "1ns", "verify", pkg, "--trust-key", pub},
			{"--timeout", "1ns", "skill", "canonicalize", skillDir},
		} {
			if r := signctl(t, nil, args...); r.code != 0 {
				t.Errorf("signctl %s: exit %d\n%s", strings.Join(args, " "), r.code, r.stderr)
			}
		}
		// Talking to the daemon is: that is exit 3, not bad input.
		r := signctl(t, d, "--timeout", "1ns", "sign", pkg, "--key", "release", "--out", filepath.Join(dir, "t.sig"))
		expectExit(t, r, 3, "sign with a 1 ns --timeout")
		if r := signctl(t, d, "--timeout", "-1s", "key", "list"); r.code != 2 || !strings.Contains(r.stderr, "--timeout") {
			t.Errorf("a negative --timeout: exit %d %s", r.code, r.stderr)
		}
	})

	t.Run("offline against several keys, none the signer", func(t *testing.T) {
		var args []string
		var fps []string
		for _, name := range []string{"k2", "k3"} {
			out := mustSignctl(t, d, "key", "create", name, "--algorithm", "ed25519").stdout
			fps = append(fps, strings.TrimSpace(out[strings.Index(out, "fingerprint ")+len("fingerprint "):]))
			args = append(args, "--trust-key", writeFile(t, dir, name+".pem", []byte(mustSignctl(t, d, "key", "public", name).stdout)))
		}
		r := signctl(t, nil, append([]string{"verify", pkg}, args...)...)
		if r.code != 1 || !strings.Contains(r.stderr, "UNTRUSTED_SIGNER") || !strings.Contains(r.stderr, fps[0]) || !strings.Contains(r.stderr, fps[1]) {
			t.Fatalf("exit %d, want 1 naming both keys given (%v):\n%s", r.code, fps, r.stderr)
		}
	})

	t.Run("an unwritable signature is refused before signing", func(t *testing.T) {
		auditLen := func() int {
			var recs []json.RawMessage
			if err := json.Unmarshal([]byte(mustSignctl(t, d, "audit", "list", "-o", "json").stdout), &recs); err != nil {
				t.Fatal(err)
			}
			return len(recs)
		}
		before := auditLen()
		other := writeFile(t, dir, "other.so", []byte("other"))
		if err := os.Mkdir(pkg+".sig.d", 0o755); err != nil {
			t.Fatal(err)
		}
		for _, tc := range []struct {
			name string
			args []string
			want string
		}{
			{"FILE.sig is a directory", []string{"sign", other, "--key", "release", "--out", pkg + ".sig.d"}, "is a directory"},
			{"no such directory", []string{"sign", other, pkg, "--key", "release"}, ""},
			{"missing directory", []string{"sign", other, "--key", "release", "--out", filepath.Join(dir, "nodir", "x.sig")}, "no such file or directory"},
		} {
			if tc.want == "" {
				// The second file's .sig is made a directory: the
				// first file is not signed either.
				if err := os.Remove(pkg + ".sig"); err != nil {
					t.Fatal(err)
				}
				if err := os.Mkdir(pkg+".sig", 0o755); err != nil {
					t.Fatal(err)
				}
				tc.want = "is a directory"
			}
			r := signctl(t, d, tc.args...)
			if r.code != 2 || !strings.Contains(r.stderr, tc.want) || strings.Count(r.stderr, "\n") != 1 {
				t.Errorf("%s: exit %d, want 2 and one line saying %q\n%s", tc.name, r.code, tc.want, r.stderr)
			}
		}
		if _, err := os.Stat(other + ".sig"); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("other.so.sig written although the command was refused: %v", err)
		}
		if after := auditLen(); after != before {
			t.Errorf("the audit log grew from %d to %d records: something was signed", before, after)
		}
	})
}
