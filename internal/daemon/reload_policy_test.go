package daemon

import (
	"crypto/sha256"
	"encoding/hex"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/signerd/signerd/internal/server"
)

// TestReloadNamesThePolicyInForce: the audit record of a reload says which
// policy file contents it put in force. Two policies with the same path
// and number of rules (uid 1001 a verifier, then an admin) must not leave
// the same record: the audit log would not show that anyone's rights
// changed.
func TestReloadNamesThePolicyInForce(t *testing.T) {
	path := filepath.Join(t.TempDir(), "policy.json")
	r := &reloader{
		log:   slog.New(slog.NewTextHandler(io.Discard, nil)),
		level: new(slog.LevelVar),
		authz: server.NewSwitchAuthorizer(server.NewDefaultAuthorizer()),
	}
	r.cfg.reread = func() (Config, error) { return Config{Policy: path, LogLevel: "info"}, nil }
	var details []string
	for _, role := range []string{"verifier", "admin"} {
		data := []byte(`{"version": 1, "rules": [{"uids": [0], "role": "admin"}, {"uids": [1001], "role": "` + role + `"}]}`)
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
		detail, err := r.apply()
		if err != nil {
			t.Fatalf("apply: %v", err)
		}
		sum := sha256.Sum256(data)
		if want := "sha256 " + hex.EncodeToString(sum[:]); !strings.Contains(detail, want) {
			t.Errorf("reload detail %q does not name the file's contents (%s)", detail, want)
		}
		details = append(details, detail)
	}
	if details[0] == details[1] {
		t.Fatalf("two different policies were recorded alike: %q", details[0])
	}
}
