package softhsmtest

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/signerd/signerd/internal/testutil/softhsm"
)

// runSignerdExpectingFailure runs signerd with args on tok's token
// directory and returns its output; it fails the test if signerd starts.
func runSignerdExpectingFailure(t *testing.T, tok *softhsm.Token, env []string, args ...string) string {
	t.Helper()
	cmd := exec.Command(bins.signerd, args...)
	cmd.Env = append(append(os.Environ(), "SOFTHSM2_CONF="+tok.ConfPath), env...)
	done := make(chan struct{})
	var out []byte
	var err error
	go func() { out, err = cmd.CombinedOutput(); close(done) }()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		cmd.Process.Kill()
		<-done
		t.Fatalf("signerd did not exit:\n%s", out)
	}
	if err == nil {
		t.Fatalf("signerd started:\n%s", out)
	}
	if strings.Contains(string(out), tok.PIN) {
		t.Fatalf("output contains the PIN:\n%s", out)
	}
	return string(out)
}

// TestPKCS11URI: an RFC 7512 URI alone chooses module, token and PIN file;
// a bad one, or one that disagrees with the other flags, stops start-up
// with a message saying what is wrong.
func TestPKCS11URI(t *testing.T) {
	tok := softhsm.NewToken(t)
	id := tok.Identity(t)
	dir := t.TempDir()
	d := &daemon{
		t: t, tok: tok, dir: dir,
		socket:  filepath.Join(dir, "run", "signerd.sock"),
		db:      filepath.Join(dir, "signerd.db"),
		pinFile: tok.WritePINFile(t),
	}
	d.uri = fmt.Sprintf("pkcs11:token=%s;serial=%s?module-path=%s&pin-source=file:%s", tok.Label, id.Serial, tok.ModulePath, d.pinFile)
	d.start(t)
	mustSignctl(t, d, "key", "create", "release", "--algorithm", "ed25519")
	mustSignctl(t, d, "trust", "add", "--org", "acme", "--key", "release")
	pkg := writeFile(t, t.TempDir(), "a.so", []byte("chosen by URI"))
	mustSignctl(t, d, "sign", pkg, "--key", "release")
	mustSignctl(t, d, "verify", pkg, "--org", "acme")
	if logs := d.logs.String(); !strings.Contains(logs, "HSM token recorded") || !strings.Contains(logs, id.Serial) {
		t.Fatalf("the token's serial was not recorded at first start:\n%s", logs)
	}
	if err := d.stop(t); err != nil {
		t.Fatal(err)
	}

	base := []string{"--db", filepath.Join(t.TempDir(), "db"), "--socket", filepath.Join(t.TempDir(), "s.sock")}
	good := d.uri
	// A SoftHSM2 configuration whose token directory holds no token.
	emptyDir := t.TempDir()
	emptyConf := writeFile(t, emptyDir, "softhsm2.conf", []byte("directories.tokendir = "+emptyDir+"\nobjectstore.backend = file\nlog.level = ERROR\nslots.removable = false\n"))
	for _, tt := range []struct {
		name string
		args []string
		env  []string
		want string
	}{
		{"unknown attribute", []string{"--pkcs11-uri", "pkcs11:token=" + tok.Label + ";colour=blue"}, nil, `unknown path (before ?) attribute "colour"`},
		{"PIN in the URI", []string{"--pkcs11-uri", "pkcs11:token=" + tok.Label + "?pin-value=" + tok.PIN}, nil, `"pin-value" would put the PIN on the command line`},
		{"bad percent-encoding", []string{"--pkcs11-uri", "pkcs11:token=%zz"}, nil, "bad percent-encoding"},
		{"from the environment", nil, []string{"SIGNERD_PKCS11_URI=pkcs11:token=" + tok.Label + ";object=k"}, `"object" names an object`},
		{"label disagrees", []string{"--pkcs11-uri", good, "--token-label", "other"}, nil, `--pkcs11-uri gives token "` + tok.Label + `" but --token-label`},
		{"module disagrees", []string{"--pkcs11-uri", good, "--pkcs11-module", "/usr/lib/other.so"}, nil, "gives module-path"},
		{"PIN file disagrees", []string{"--pkcs11-uri", good, "--pin-file", filepath.Join(dir, "other-pin")}, nil, "gives pin-source"},
		{"PIN also in the environment", []string{"--pkcs11-uri", good}, []string{"SIGNERD_PIN=" + tok.PIN}, "SIGNERD_PIN is set too"},
		{"serial of no token", []string{"--pkcs11-uri", fmt.Sprintf("pkcs11:token=%s;serial=0000000000000000?module-path=%s&pin-source=file:%s", tok.Label, tok.ModulePath, d.pinFile)}, nil,
			fmt.Sprintf(`no PKCS#11 token with label %q, serial "0000000000000000"`, tok.Label)},
		{"module with no token", []string{"--pkcs11-uri", good}, []string{"SOFTHSM2_CONF=" + emptyConf}, "(no tokens present)"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			out := runSignerdExpectingFailure(t, tok, tt.env, append(tt.args, base...)...)
			if !strings.Contains(out, tt.want) {
				t.Fatalf("error does not say %q:\n%s", tt.want, out)
			}
			for _, kind := range []string{": invalid argument", ": not found"} {
				if strings.Contains(out, kind+"\n") {
					t.Errorf("error ends with the kind %q after a complete sentence:\n%s", kind, out)
				}
			}
		})
	}
}

// TestTokenPinnedBySerial: the first start records the token's serial in
// the store; a later start against another token with the same label is
// refused with a message naming both; the recorded token is still served.
func TestTokenPinnedBySerial(t *testing.T) {
	const label = "signerd-same-label"
	first := softhsm.NewTokenLabelled(t, label)
	// Read now: SoftHSM2 in this process sees the token directory of the
	// newest token.
	a := first.Identity(t)
	d := &daemon{t: t, tok: first, dir: t.TempDir()}
	d.socket, d.db, d.pinFile = filepath.Join(d.dir, "run", "signerd.sock"), filepath.Join(d.dir, "signerd.db"), first.WritePINFile(t)
	d.start(t)
	mustSignctl(t, d, "key", "create", "release", "--algorithm", "ed25519")
	if err := d.stop(t); err != nil {
		t.Fatal(err)
	}

	// Another token, same label, same module: a different HSM.
	second := softhsm.NewTokenLabelled(t, label)
	b := second.Identity(t)
	if a.Serial == b.Serial {
		t.Fatalf("two tokens share serial %q: the test cannot tell them apart", a.Serial)
	}
	out := runSignerdExpectingFailure(t, second, nil,
		"--pkcs11-module", second.ModulePath, "--token-label", label, "--pin-file", second.WritePINFile(t),
		"--db", d.db, "--socket", d.socket)
	for _, want := range []string{"not the token the store's keys were made in", a.Serial, b.Serial} {
		if !strings.Contains(out, want) {
			t.Fatalf("refusal does not mention %q:\n%s", want, out)
		}
	}

	// The recorded token: served, its key signs; recorded once.
	d.start(t)
	mustSignctl(t, d, "sign", writeFile(t, t.TempDir(), "a.so", []byte("on the recorded token")), "--key", "release")
	var recs []auditRecord
	if err := json.Unmarshal([]byte(mustSignctl(t, d, "audit", "list", "-o", "json").stdout), &recs); err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, r := range recs {
		if r.Operation == "hsm.token.record" {
			n++
		}
	}
	if n != 1 {
		t.Fatalf("%d hsm.token.record audit records, want 1", n)
	}
}
