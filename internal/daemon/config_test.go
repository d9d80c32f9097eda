package daemon

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/spf13/pflag"
)

// testPIN is one no temporary path can contain: these tests assert the PIN is
// absent from messages that name a t.TempDir path, whose random digits once
// held "1234".
const testPIN = "s3cret-PIN-q"

func TestConfigPrecedence(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "signerd.conf")
	os.WriteFile(file, []byte("# comment\ntoken-label = from-file\nsocket = /file.sock\ndb = /file.db\nsocket-mode = 0600\n"), 0o600)
	env := map[string]string{
		"SIGNERD_CONFIG":      file,
		"SIGNERD_SOCKET":      "/env.sock",
		"SIGNERD_TOKEN_LABEL": "",
		"SIGNERD_PIN":         testPIN,
	}
	fs := pflag.NewFlagSet("t", pflag.ContinueOnError)
	registerFlags(fs)
	if err := fs.Parse([]string{"--db", "/flag.db"}); err != nil {
		t.Fatal(err)
	}
	c, err := Load(fs, func(k string) string { return env[k] })
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct{ name, got, want string }{
		{"file beats default", c.TokenLabel, "from-file"},
		{"env beats file", c.Socket, "/env.sock"},
		{"flag beats file", c.Store, "bbolt:/flag.db"},
		{"default when unset", c.PKCS11Module, Defaults().PKCS11Module},
	}
	for _, tt := range tests {
		if tt.got != tt.want {
			t.Errorf("%s: got %q, want %q", tt.name, tt.got, tt.want)
		}
	}
	if c.SocketMode != 0o600 {
		t.Errorf("socket-mode from file: %o", c.SocketMode)
	}
	if pin, err := c.PIN(); err != nil || pin != testPIN {
		t.Errorf("PIN from env: %q %v", pin, err)
	}
	if strings.Contains(c.Redacted(), testPIN) {
		t.Error("Redacted shows the PIN")
	}
}

func TestConfigFileErrors(t *testing.T) {
	for name, content := range map[string]string{
		"unknown key":  "tokn-label = x\n",
		"no equals":    "token-label\n",
		"pin in file":  "pin = " + testPIN + "\n",
		"bad mode":     "socket-mode = rwx\n",
		"bad duration": "shutdown-timeout = soon\n",
		"bad sessions": "max-sessions = 0\n",
	} {
		t.Run(name, func(t *testing.T) {
			file := filepath.Join(t.TempDir(), "c")
			os.WriteFile(file, []byte(content), 0o600)
			fs := pflag.NewFlagSet("t", pflag.ContinueOnError)
			registerFlags(fs)
			_ = fs.Parse([]string{"--config", file})
			_, err := Load(fs, func(string) string { return "" })
			if err == nil {
				t.Fatal("Load accepted a bad config file")
			}
			if strings.Contains(err.Error(), testPIN) {
				t.Fatalf("error shows the PIN: %v", err)
			}
		})
	}
}

func TestPINFile(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "pin")
	os.WriteFile(good, []byte("s3cret\n"), 0o600)
	loose := filepath.Join(dir, "loose")
	os.WriteFile(loose, []byte("s3cret\n"), 0o600)
	os.Chmod(loose, 0o640)
	empty := filepath.Join(dir, "empty")
	os.WriteFile(empty, nil, 0o600)
	tests := []struct {
		name, file, want string
		wantErr          bool
	}{
		{"trailing newline trimmed", good, "s3cret", false},
		{"group-readable refused", loose, "", true},
		{"empty refused", empty, "", true},
		{"missing", filepath.Join(dir, "nope"), "", true},
		{"none given", "", "", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := Defaults()
			c.PINFile = tt.file
			pin, err := c.PIN()
			if (err != nil) != tt.wantErr || pin != tt.want {
				t.Fatalf("PIN() = %q, %v", pin, err)
			}
			if err != nil && strings.Contains(err.Error(), "s3cret") {
				t.Fatalf("error shows the PIN: %v", err)
			}
		})
	}
}

func TestStoreSpec(t *testing.T) {
	for spec, ok := range map[string]bool{"bbolt:/x.db": true, "bbolt:": false, "etcd:http://a": false, "x": false, "sqlite:/a": false} {
		c := Defaults()
		c.Store = spec
		if _, err := c.DBPath(); (err == nil) != ok {
			t.Errorf("DBPath(%q) = %v", spec, err)
		}
	}
}

func TestPINFileFlagBeatsEnv(t *testing.T) {
	file := filepath.Join(t.TempDir(), "pin")
	os.WriteFile(file, []byte("from-file\n"), 0o600)
	fs := pflag.NewFlagSet("t", pflag.ContinueOnError)
	registerFlags(fs)
	if err := fs.Parse([]string{"--pin-file", file}); err != nil {
		t.Fatal(err)
	}
	c, err := Load(fs, func(k string) string {
		if k == "SIGNERD_PIN" {
			return "from-env"
		}
		return ""
	})
	if err != nil {
		t.Fatal(err)
	}
	if pin, err := c.PIN(); err != nil || pin != "from-file" {
		t.Fatalf("PIN() = %q, %v; want the --pin-file flag to beat SIGNERD_PIN", pin, err)
	}
}

// TestDBAndStoreConflict: --db FILE is --store bbolt:FILE; both at one
// level (flags, or environment) are refused instead of one winning in
// silence. Across levels the usual precedence decides.
func TestDBAndStoreConflict(t *testing.T) {
	for _, tc := range []struct {
		name  string
		args  []string
		env   map[string]string
		want  string // "" : no error, and this store
		store string
	}{
		{"both flags", []string{"--db", "/a.db", "--store", "bbolt:/b.db"}, nil, "--db and --store both given", ""},
		{"both variables", nil, map[string]string{"SIGNERD_DB": "/a.db", "SIGNERD_STORE": "bbolt:/b.db"}, "SIGNERD_DB and SIGNERD_STORE both set", ""},
		{"flag over variable", []string{"--db", "/a.db"}, map[string]string{"SIGNERD_STORE": "bbolt:/b.db"}, "", "bbolt:/a.db"},
		{"flag over conflicting variables", []string{"--store", "bbolt:/c.db"}, map[string]string{"SIGNERD_DB": "/a.db", "SIGNERD_STORE": "bbolt:/b.db"}, "", "bbolt:/c.db"},
		{"both in the config file", nil, map[string]string{"SIGNERD_CONFIG": "db-and-store"}, "db and store (line 1) both set", ""},
		{"one flag", []string{"--store", "bbolt:/b.db"}, nil, "", "bbolt:/b.db"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fs := pflag.NewFlagSet("t", pflag.ContinueOnError)
			registerFlags(fs)
			if err := fs.Parse(tc.args); err != nil {
				t.Fatal(err)
			}
			if tc.env["SIGNERD_CONFIG"] == "db-and-store" {
				p := filepath.Join(t.TempDir(), "signerd.conf")
				if err := os.WriteFile(p, []byte("store = bbolt:/b.db\ndb = /a.db\n"), 0o600); err != nil {
					t.Fatal(err)
				}
				tc.env = map[string]string{"SIGNERD_CONFIG": p}
			}
			c, err := Load(fs, func(k string) string { return tc.env[k] })
			if tc.want != "" {
				if err == nil || !strings.Contains(err.Error(), tc.want) {
					t.Fatalf("Load: %v, want an error saying %q", err, tc.want)
				}
				return
			}
			if err != nil || c.Store != tc.store {
				t.Fatalf("Load: store %q, %v; want %q", c.Store, err, tc.store)
			}
		})
	}
}
