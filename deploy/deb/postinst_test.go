package deb_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestPostinstRestartsOnUpgrade runs the postinst with stand-ins for the
// commands it calls (and a directory in place of /run/systemd/system):
// an upgrade try-restarts signerd, a first install does not start it.
func TestPostinstRestartsOnUpgrade(t *testing.T) {
	src, err := os.ReadFile("postinst")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	systemd := filepath.Join(dir, "run-systemd-system")
	if err := os.Mkdir(systemd, 0o755); err != nil {
		t.Fatal(err)
	}
	script := filepath.Join(dir, "postinst")
	if !strings.Contains(string(src), "/run/systemd/system") {
		t.Fatal("the postinst no longer tests for /run/systemd/system")
	}
	if err := os.WriteFile(script, []byte(strings.ReplaceAll(string(src), "/run/systemd/system", systemd)), 0o755); err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "bin")
	if err := os.Mkdir(bin, 0o755); err != nil {
		t.Fatal(err)
	}
	calls := filepath.Join(dir, "calls")
	for _, name := range []string{"getent", "install", "chown", "chmod", "systemctl"} {
		stub := "#!/bin/sh\necho \"" + name + " $*\" >> " + calls + "\n"
		if err := os.WriteFile(filepath.Join(bin, name), []byte(stub), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for _, tc := range []struct {
		name    string
		args    []string
		restart bool
	}{
		{"first install", []string{"configure", ""}, false},
		{"upgrade", []string{"configure", "0.9.0"}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_ = os.Remove(calls)
			cmd := exec.Command("sh", append([]string{script}, tc.args...)...)
			cmd.Env = append(os.Environ(), "PATH="+bin+":/usr/bin:/bin")
			if out, err := cmd.CombinedOutput(); err != nil {
				t.Fatalf("postinst %v: %v\n%s", tc.args, err, out)
			}
			log, _ := os.ReadFile(calls)
			if got := strings.Contains(string(log), "systemctl try-restart signerd.service"); got != tc.restart {
				t.Errorf("postinst %v: try-restart called %v, want %v; calls:\n%s", tc.args, got, tc.restart, log)
			}
			if strings.Contains(string(log), "systemctl start") || strings.Contains(string(log), "systemctl restart") {
				t.Errorf("postinst %v starts signerd:\n%s", tc.args, log)
			}
		})
	}
}
