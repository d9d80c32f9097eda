package boltstore

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/signerd/signerd/internal/errdefs"
	"github.com/signerd/signerd/internal/store"
)

// TestJournalLossRefused: a database that was not closed cleanly refuses
// to open without its whole journal, read-write or read-only, naming the
// damage: records acknowledged before the crash may be only there, and a
// log that went on without them would fork from what was released.
// Before, a missing or truncated journal was recreated in silence and the
// acknowledged records were gone. With AcceptJournalLoss it opens, and
// says what it accepted.
func TestJournalLossRefused(t *testing.T) {
	for _, tc := range []struct {
		name   string
		damage func(t *testing.T, path string)
		want   string
	}{
		{"missing", func(t *testing.T, p string) {
			if err := os.Remove(p); err != nil {
				t.Fatal(err)
			}
		}, "is missing"},
		{"truncated to nothing", func(t *testing.T, p string) {
			if err := os.Truncate(p, 0); err != nil {
				t.Fatal(err)
			}
		}, "is 0 bytes, shorter than"},
		{"truncated after a record", func(t *testing.T, p string) {
			if err := os.Truncate(p, 600); err != nil {
				t.Fatal(err)
			}
		}, "is 600 bytes, shorter than"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			path := filepath.Join(t.TempDir(), "signerd.db")
			s := openOK(t, path, Options{JournalSize: 1 << 20})
			holdApplies(s)
			for i := range 10 {
				putSig(t, s, i, 3)
			}
			crashJournal(t, s) // 10 acknowledged, none applied
			tc.damage(t, journalPath(path))

			for _, ro := range []bool{false, true} {
				_, err := Open(ctx, path, Options{ReadOnly: ro, JournalSize: 1 << 20})
				if !errors.Is(err, errdefs.ErrFailedPrecondition) || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "not closed cleanly") {
					t.Fatalf("Open (read-only %t) without the whole journal: %v", ro, err)
				}
			}
			s, err := Open(ctx, path, Options{AcceptJournalLoss: true, JournalSize: 1 << 20})
			if err != nil {
				t.Fatalf("Open with AcceptJournalLoss: %v", err)
			}
			if !strings.Contains(s.JournalLoss(), tc.want) {
				t.Fatalf("JournalLoss() = %q", s.JournalLoss())
			}
			if err := s.VerifyAudit(ctx); err != nil {
				t.Fatal(err)
			}
			// Closed cleanly before the loss was recorded (the daemon's
			// start failed later), it opens again without complaint and
			// still reports the loss, until it is recorded.
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			s, err = Open(ctx, path, Options{JournalSize: 1 << 20})
			if err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(s.JournalLoss(), tc.want) {
				t.Fatalf("the unrecorded loss is not reported again: %q", s.JournalLoss())
			}
			if err := s.JournalLossRecorded(); err != nil {
				t.Fatal(err)
			}
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			s = openOK(t, path, Options{JournalSize: 1 << 20})
			if s.JournalLoss() != "" {
				t.Fatalf("a recorded loss is reported again: %q", s.JournalLoss())
			}
		})
	}
}

// TestJournalLossesAccumulate: a loss accepted by a start that stopped
// before recording it stays pending; a second loss accepted after it is
// reported with it, not in its place.
func TestJournalLossesAccumulate(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "signerd.db")
	s := openOK(t, path, Options{JournalSize: 1 << 20})
	holdApplies(s)
	putSig(t, s, 0, 3)
	crashJournal(t, s)
	if err := os.Truncate(journalPath(path), 600); err != nil {
		t.Fatal(err)
	}
	s, err := Open(ctx, path, Options{AcceptJournalLoss: true, JournalSize: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	holdApplies(s)
	putSig(t, s, 1, 3)
	crashJournal(t, s) // before the first loss was recorded
	if err := os.Remove(journalPath(path)); err != nil {
		t.Fatal(err)
	}
	s, err = Open(ctx, path, Options{AcceptJournalLoss: true, JournalSize: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	got := s.JournalLoss()
	first, second := strings.Index(got, "is 600 bytes, shorter than"), strings.Index(got, "is missing")
	if first < 0 || second < first {
		t.Fatalf("JournalLoss() after two accepted losses = %q, want the first and then the second", got)
	}
}

// TestJournalLossSurvivesADeathAfterTheJournalIsRemade: a start that
// accepted a loss and died once the journal was whole again leaves
// nothing missing for the next start to see; the loss is pending in the
// file all the same, and reported.
func TestJournalLossSurvivesADeathAfterTheJournalIsRemade(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "signerd.db")
	s := openOK(t, path, Options{JournalSize: 1 << 20})
	holdApplies(s)
	putSig(t, s, 0, 3)
	crashJournal(t, s)
	if err := os.Remove(journalPath(path)); err != nil {
		t.Fatal(err)
	}
	journalMadeHook = func() error { return errors.New("killed") }
	_, err := Open(ctx, path, Options{AcceptJournalLoss: true, JournalSize: 1 << 20})
	journalMadeHook = nil
	if err == nil || !strings.Contains(err.Error(), "killed") {
		t.Fatalf("the open that dies: %v", err)
	}
	s, err = Open(ctx, path, Options{JournalSize: 1 << 20})
	if err != nil {
		t.Fatalf("the next start, with the journal whole: %v", err)
	}
	t.Cleanup(func() { _ = s.Close() })
	if !strings.Contains(s.JournalLoss(), "is missing") {
		t.Fatalf("the accepted loss was forgotten: JournalLoss() = %q", s.JournalLoss())
	}
}

// TestJournalCleanCloseNeedsNoJournal: after a clean close everything is
// in the file, which opens (read-only too, as a copy would) without its
// journal.
func TestJournalCleanCloseNeedsNoJournal(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "signerd.db")
	s := openOK(t, path, Options{JournalSize: 1 << 20})
	recs := []store.SignatureRecord{putSig(t, s, 1, 1), putSig(t, s, 2, 1)}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(journalPath(path)); err != nil {
		t.Fatal(err)
	}
	ro := openOK(t, path, Options{ReadOnly: true})
	checkAll(t, ro, recs, 2)
	if err := ro.Close(); err != nil {
		t.Fatal(err)
	}
	s = openOK(t, path, Options{JournalSize: 1 << 20})
	checkAll(t, s, recs, 2)
	_ = ctx
}

// TestJournalOfAnotherDatabase: a journal left beside a path whose
// database is gone is refused by the new database made there, rather
// than replayed into it (its records belong to the lost one's log).
func TestJournalOfAnotherDatabase(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "signerd.db")
	s := openOK(t, path, Options{JournalSize: 1 << 20})
	holdApplies(s)
	for i := range 5 {
		putSig(t, s, i, 5)
	}
	crashJournal(t, s)
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	_, err := Open(ctx, path, Options{JournalSize: 1 << 20})
	if !errors.Is(err, errdefs.ErrFailedPrecondition) || !strings.Contains(err.Error(), "belongs to a database that is gone") {
		t.Fatalf("Open of a new database beside an old journal: %v", err)
	}
	// Refused before bbolt made a file: a second try is refused too,
	// rather than finding an empty database and replaying the journal.
	if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("the refused Open left a database file: %v", err)
	}
	if _, err := Open(ctx, path, Options{JournalSize: 1 << 20}); !errors.Is(err, errdefs.ErrFailedPrecondition) {
		t.Fatalf("second Open: %v", err)
	}
	if err := os.Rename(journalPath(path), journalPath(path)+".old"); err != nil {
		t.Fatal(err)
	}
	s = openOK(t, path, Options{JournalSize: 1 << 20})
	if size, err := s.LogSize(ctx); err != nil || size != 0 {
		t.Fatalf("the new database's log: %d records (%v), want 0", size, err)
	}
}
