package server

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestLoadPolicyFileMode: a policy file others may write, or that belongs
// to a user other than root and signerd's, is refused: whoever can change
// it decides who may sign at the next reload.
func TestLoadPolicyFileMode(t *testing.T) {
	path := filepath.Join(t.TempDir(), "policy.json")
	if err := os.WriteFile(path, []byte(`{"version": 1, "rules": [{"uids": [0], "role": "admin"}]}`), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		mode os.FileMode
		want string // "" to load
	}{
		{0o600, ""},
		{0o644, ""},
		{0o664, "writable by group or others"},
		{0o646, "writable by group or others"},
	} {
		if err := os.Chmod(path, tc.mode); err != nil {
			t.Fatal(err)
		}
		_, err := LoadPolicy(path)
		if tc.want == "" && err != nil || tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)) {
			t.Errorf("mode %04o: %v, want %q", tc.mode, err, tc.want)
		}
	}
	if os.Geteuid() != 0 {
		return // only root can give the file away
	}
	if err := os.Chmod(path, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(path, 12345, 12345); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadPolicy(path); err == nil || !strings.Contains(err.Error(), "owned by uid 12345") {
		t.Errorf("a policy file of uid 12345: %v, want a refusal", err)
	}
}
