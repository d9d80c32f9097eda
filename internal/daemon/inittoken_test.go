package daemon

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/signerd/signerd/internal/testutil/softhsm"
)

// TestInitTokenExistingTokenMakesNoPINFiles: init-token on a label that
// already has a token must not leave behind PIN files with random PINs the
// token never had (README, "Installing the Debian package": the SO PIN file
// is moved off the machine, so re-running the documented command is
// expected). With the PIN files that exist it stays a no-op.
func TestInitTokenExistingTokenMakesNoPINFiles(t *testing.T) {
	tok := softhsm.NewToken(t)
	dir := t.TempDir()
	pinFile, soFile := filepath.Join(dir, "pin"), filepath.Join(dir, "so-pin")
	run := func() (string, error) {
		var out bytes.Buffer
		cmd := NewRootCommand(&out, &out, func(string) string { return "" })
		cmd.SetArgs([]string{"init-token", "--pkcs11-module", tok.ModulePath, "--token-label", tok.Label,
			"--pin-file", pinFile, "--so-pin-file", soFile})
		err := cmd.Execute()
		return out.String(), err
	}

	out, err := run()
	if err == nil {
		t.Fatalf("init-token on the existing token %q succeeded with new PIN files (%q)", tok.Label, out)
	}
	if !strings.Contains(err.Error(), "already exists") {
		t.Fatalf("error %q does not say the token exists", err)
	}
	for _, p := range []string{pinFile, soFile} {
		if _, err := os.Stat(p); !os.IsNotExist(err) {
			t.Fatalf("%s left behind (stat: %v): it holds a PIN the token never had", p, err)
		}
	}

	// The user PIN's file without the SO PIN's (kept off the machine, as
	// the README says): nothing to do, and no SO PIN file is made.
	if err := os.WriteFile(pinFile, []byte(tok.PIN+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if out, err := run(); err != nil || !strings.Contains(out, "already exists") {
		t.Fatalf("init-token with the user PIN file: %q, %v; want \"already exists\" and no error", out, err)
	}
	if _, err := os.Stat(soFile); !os.IsNotExist(err) {
		t.Fatalf("%s made for an existing token (stat: %v): it holds an SO PIN the token never had", soFile, err)
	}
	if b, _ := os.ReadFile(pinFile); string(b) != tok.PIN+"\n" {
		t.Fatalf("pin file changed to %q", b)
	}
}
