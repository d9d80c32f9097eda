package cli

import (
	"os"
	"path/filepath"
	"testing"
	"time"
)

// TestMonitorState: the witness's state round-trips, is private, leaves no
// temporary files, and a damaged one is reported, never replaced.
func TestMonitorState(t *testing.T) {
	dir := t.TempDir()
	if st, err := loadMonitorState(dir); err != nil || st != nil {
		t.Fatalf("no state yet: %v, %v", st, err)
	}
	want := monitorState{Origin: "example.com/log", LogKey: "example.com/log+01234567+AAAA", Checkpoint: "note\n", TreeSize: 7, AcceptedAt: time.Unix(1, 0).UTC()}
	for range 3 {
		if err := saveMonitorState(dir, want); err != nil {
			t.Fatal(err)
		}
	}
	got, err := loadMonitorState(dir)
	if err != nil || *got != want {
		t.Fatalf("loadMonitorState = %+v, %v; want %+v", got, err, want)
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 1 || entries[0].Name() != monitorStateFile {
		t.Fatalf("state dir holds %v, want only %s", entries, monitorStateFile)
	}
	if fi, err := os.Stat(filepath.Join(dir, monitorStateFile)); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("state file mode %v (%v), want 0600", fi.Mode(), err)
	}
	for name, content := range map[string]string{
		"not JSON":      `{"origin":`,
		"unknown field": `{"origin":"o","log_key":"k","checkpoint":"c","extra":1}`,
		"no key":        `{"origin":"o","checkpoint":"c"}`,
	} {
		p := filepath.Join(dir, monitorStateFile)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		if _, err := loadMonitorState(dir); exitCode(err) != ExitUsage {
			t.Errorf("%s: loadMonitorState = %v, want exit %d", name, err, ExitUsage)
		}
		if b, _ := os.ReadFile(p); string(b) != content {
			t.Errorf("%s: the damaged state was changed", name)
		}
	}
}
