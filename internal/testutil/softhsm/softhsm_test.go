package softhsm_test

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/signerd/signerd/internal/errdefs"
	"github.com/signerd/signerd/internal/keystore"
	"github.com/signerd/signerd/internal/keystore/pkcs11"
	"github.com/signerd/signerd/internal/testutil/softhsm"
)

func TestNewToken(t *testing.T) {
	tok := softhsm.NewToken(t)
	if got := os.Getenv("SOFTHSM2_CONF"); got != tok.ConfPath {
		t.Errorf("SOFTHSM2_CONF = %q, want %q", got, tok.ConfPath)
	}
	conf, err := os.ReadFile(tok.ConfPath)
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range []string{"directories.tokendir = " + tok.Dir + "/tokens", "objectstore.backend = file", "slots.removable = false"} {
		if !strings.Contains(string(conf), line) {
			t.Errorf("softhsm2.conf lacks %q:\n%s", line, conf)
		}
	}
	pinFile := tok.WritePINFile(t)
	fi, err := os.Stat(pinFile)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("PIN file mode %v, want 0600", fi.Mode().Perm())
	}
	if b, _ := os.ReadFile(pinFile); strings.TrimSpace(string(b)) != tok.PIN {
		t.Error("PIN file does not hold the PIN")
	}
	// A second token with the same label in the same directory is refused.
	if err := pkcs11.InitToken(tok.ModulePath, tok.Label, "so-pin-1234", "user-pin-1234"); err == nil {
		t.Error("InitToken with a label in use succeeded")
	}
}

// helperEnv carries the child's instructions; the PIN travels in the
// environment, never in argv.
const helperEnv = "SOFTHSM_TEST_INSPECT"

// The inspection helpers must work from another process than the one that
// made the keys, while it still has the token open: that is how the
// end-to-end suite checks a running signerd. The test binary re-runs itself
// as that other process.
func TestInspectFromAnotherProcess(t *testing.T) {
	if spec := os.Getenv(helperEnv); spec != "" {
		inspectChild(t, spec)
		return
	}
	tok := softhsm.NewToken(t)
	cfg := tok.Config()
	cfg.Logger = slog.New(slog.NewTextHandler(t.Output(), nil))
	ks, err := pkcs11.Open(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer ks.Close()
	id := []byte("cross-process-01")
	if _, err := ks.CreateKey(context.Background(), keystore.CreateKeyRequest{ID: id, Label: "x", Algorithm: keystore.Ed25519}); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestInspectFromAnotherProcess$", "-test.v")
	cmd.Env = append(os.Environ(), fmt.Sprintf("%s=%s %s %s %s", helperEnv, tok.ModulePath, tok.Label, tok.PIN, hex.EncodeToString(id)))
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "child: sensitive=true extractable=false private=true token=true value=refused") {
		t.Fatalf("child: %v\n%s", err, out)
	}
	// The store in this process is unaffected by the child's login and logout.
	if err := ks.Ping(context.Background()); err != nil {
		t.Fatalf("Ping after the child: %v", err)
	}
}

func inspectChild(t *testing.T, spec string) {
	f := strings.Fields(spec)
	id, _ := hex.DecodeString(f[3])
	tok := &softhsm.Token{ModulePath: f[0], Label: f[1], PIN: f[2]}
	sensitive, extractable, private, token := tok.PrivateKeyAttributes(t, id)
	value := "revealed"
	if err := tok.ReadPrivateValue(t, id); errors.Is(err, errdefs.ErrPermissionDenied) && strings.Contains(err.Error(), "CKR_ATTRIBUTE_SENSITIVE") {
		value = "refused"
	}
	t.Logf("child: sensitive=%v extractable=%v private=%v token=%v value=%s", sensitive, extractable, private, token, value)
}
