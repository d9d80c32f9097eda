package softhsmtest

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestJournalLossRefusesStart: signerd killed with acknowledged records
// in its journal, and the journal then lost, refuses to start (before, it
// recreated the journal in silence and served a log without those
// records, and the next record took a released one's seq). The message
// says what is wrong and what to do; --accept-journal-loss starts, and
// the audit log records the acceptance.
func TestJournalLossRefusesStart(t *testing.T) {
	d := startDaemon(t)
	dir := t.TempDir()
	mustSignctl(t, d, "key", "create", "release", "--algorithm", "ed25519")
	pkg := writeFile(t, dir, "pkg.so", []byte("package"))
	mustSignctl(t, d, "sign", pkg, "--key", "release")
	d.kill9(t)
	if err := os.Remove(d.db + ".journal"); err != nil {
		t.Fatal(err)
	}

	out := runSignerdExpectingFailure(t, d.tok, d.env, d.args()...)
	for _, want := range []string{"not closed cleanly", "journal " + d.db + ".journal is missing", "--accept-journal-loss"} {
		if !strings.Contains(out, want) {
			t.Fatalf("the refusal does not say %q:\n%s", want, out)
		}
	}
	if _, err := os.Stat(d.socket); err == nil {
		t.Fatalf("the refused start left its socket %s", d.socket)
	}

	d.start(t, "--accept-journal-loss")
	var recs []struct {
		Operation string `json:"operation"`
		Detail    string `json:"detail"`
	}
	if err := json.Unmarshal([]byte(mustSignctl(t, d, "audit", "list", "-o", "json").stdout), &recs); err != nil {
		t.Fatal(err)
	}
	found := false
	for _, r := range recs {
		found = found || (r.Operation == "audit.journal.loss" && strings.Contains(r.Detail, "is missing"))
	}
	if !found {
		t.Fatalf("no audit.journal.loss record in %+v", recs)
	}
	mustSignctl(t, d, "audit", "verify")
	// Stopped cleanly, it starts again without the flag (and a copy of the
	// stopped database reads offline without its journal).
	if err := d.stop(t); err != nil {
		t.Fatal(err)
	}
	d.start(t)
	mustSignctl(t, d, "sign", pkg, "--key", "release", "--out", filepath.Join(dir, "again.sig"))
}
