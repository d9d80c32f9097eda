package boltstore

import (
	"context"
	"errors"
	"fmt"
	bolt "go.etcd.io/bbolt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/signerd/signerd/internal/errdefs"
	"github.com/signerd/signerd/internal/store"
)

// TestCheckFile: CheckFile reads the meta pages of a real database file
// itself and reports a damaged meta page or a truncated file; a file that
// never was a bbolt database is not "damaged" but refused.
func TestCheckFile(t *testing.T) {
	s := openTemp(t)
	ctx := context.Background()
	for i := range 200 {
		ev := store.AuditEvent{Time: time.Now().UTC(), Caller: "uid:0", Operation: "test", Outcome: "ok", Detail: fmt.Sprintf("record %d of a long enough detail to fill pages", i)}
		if _, err := s.AppendAudit(ctx, ev); err != nil {
			t.Fatal(err)
		}
	}
	path := s.Path()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	src, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := CheckFile(path); err != nil {
		t.Fatalf("an intact file: %v", err)
	}
	ps := os.Getpagesize()
	flip := func(off int) []byte {
		b := append([]byte(nil), src...)
		b[off] ^= 1
		return b
	}
	bothMeta := flip(pageHeaderSize + 48)
	bothMeta[ps+pageHeaderSize] ^= 1
	tests := []struct {
		name    string
		data    []byte
		damaged string // a problem CheckFile must name; "" for not a database
	}{
		{"meta page 0", flip(pageHeaderSize + 48), "meta page 0 is damaged"},
		{"meta page 1", flip(ps + pageHeaderSize), "meta page 1 is damaged"},
		{"both meta pages", bothMeta, "no meta page is intact"},
		{"truncated", src[:3*ps], "the file is truncated"},
		{"a few bytes", src[:100], "the file is truncated"},
		{"not a database", []byte(strings.Repeat("x", 2*ps)), ""},
		{"empty", nil, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := filepath.Join(t.TempDir(), "x.db")
			if err := os.WriteFile(p, tt.data, 0o600); err != nil {
				t.Fatal(err)
			}
			err := CheckFile(p)
			var de *DamageError
			switch {
			case tt.damaged == "":
				if err == nil || errors.As(err, &de) || !errors.Is(err, errdefs.ErrFailedPrecondition) {
					t.Fatalf("CheckFile = %v, want a refusal that is not damage", err)
				}
			case !errors.As(err, &de) || !strings.Contains(err.Error(), tt.damaged):
				t.Fatalf("CheckFile = %v, want damage naming %q", err, tt.damaged)
			case de.MetaFallback != strings.HasPrefix(tt.name, "meta page "):
				t.Fatalf("MetaFallback = %t for %s", de.MetaFallback, tt.name)
			}
		})
	}
}

// TestGuard: a panic inside bbolt-reading code becomes a *DamageError.
func TestGuard(t *testing.T) {
	err := Guard("f.db", func() error { panic("assertion failed: page 3") })
	var de *DamageError
	if !errors.As(err, &de) || !strings.Contains(err.Error(), "page 3") {
		t.Fatalf("Guard = %v", err)
	}
	if err := Guard("f.db", func() error { return nil }); err != nil {
		t.Fatalf("Guard of a clean read = %v", err)
	}
}

// TestOpenDamagedFile: Open never panics or faults on a damaged file
// (before, the daemon died at start with bbolt's assertion, a slice
// bounds panic or SIGSEGV, and some damage was served); it refuses the
// file with a *DamageError, or, where the damage is in a page nothing
// reads at Open, opens it. Every page of a small database is zeroed, or
// has its flags cleared, one at a time, and the file is truncated.
func TestOpenDamagedFile(t *testing.T) {
	ctx := context.Background()
	src := smallDatabase(t)
	ps := os.Getpagesize()
	pages := len(src) / ps
	type damage struct {
		name string
		data []byte
	}
	var cases []damage
	for p := 2; p < pages; p++ {
		zero := append([]byte(nil), src...)
		clear(zero[p*ps : (p+1)*ps])
		flags := append([]byte(nil), src...)
		flags[p*ps+8], flags[p*ps+9] = 0, 0
		// Not an element count set to 0xffff: bbolt then reads keys and
		// values of whatever sizes the bytes past the elements say, and
		// a reader that copies them (the pending index at Open) can
		// allocate gigabytes before anything faults. Only a walk of
		// every page before use would catch that (WalkPages, which
		// offline verification runs), at a cost that grows with the file.
		cases = append(cases, damage{fmt.Sprintf("page %d zeroed", p), zero}, damage{fmt.Sprintf("page %d flags", p), flags})
	}
	for _, n := range []int{8 << 10, 32 << 10, len(src) - ps} {
		cases = append(cases, damage{fmt.Sprintf("truncated to %d", n), src[:n]})
	}
	refused := 0
	for _, c := range cases {
		for _, ro := range []bool{false, true} {
			// A copy each: damage bbolt meets inside bolt.Open (a free
			// list page) leaves that copy locked by this process.
			p := filepath.Join(t.TempDir(), "signerd.db")
			if err := os.WriteFile(p, c.data, 0o600); err != nil {
				t.Fatal(err)
			}
			st, err := Open(ctx, p, Options{ReadOnly: ro, JournalSize: minJournalSize})
			if err != nil {
				var de *DamageError
				if !errors.As(err, &de) && !errors.Is(err, errdefs.ErrFailedPrecondition) && !errors.Is(err, errdefs.ErrInternal) {
					t.Errorf("%s (read-only %t): %v, want a damage refusal", c.name, ro, err)
				}
				refused++
				continue
			}
			_ = Guard(p, st.Close)
		}
	}
	if refused == 0 {
		t.Fatal("no damaged file was refused")
	}
	t.Logf("%d damaged files, %d opens refused", len(cases), refused)
}

// TestCheckFileOtherPageSize: a file made with another page size than
// this host's (moved from a host with 16 KiB pages, say) whose meta page 0
// is torn is one bbolt still opens from meta page 1: CheckFile finds that
// page where the file's page size puts it, as bbolt does, and reports a
// fallback, not a file with no meta page intact.
func TestCheckFileOtherPageSize(t *testing.T) {
	const pageSize = 16 << 10
	if os.Getpagesize() == pageSize {
		t.Skip("this host's page size is the other one")
	}
	p := filepath.Join(t.TempDir(), "x.db")
	db, err := bolt.Open(p, 0o600, &bolt.Options{PageSize: pageSize})
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Update(func(tx *bolt.Tx) error {
		b, err := tx.CreateBucket([]byte("b"))
		if err != nil {
			return err
		}
		return b.Put([]byte("k"), []byte("v"))
	}); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	if err := CheckFile(p); err != nil {
		t.Fatalf("an intact file with %d-byte pages: %v", pageSize, err)
	}
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	b[pageHeaderSize+20] ^= 1 // meta page 0 torn
	if err := os.WriteFile(p, b, 0o600); err != nil {
		t.Fatal(err)
	}
	var de *DamageError
	if err := CheckFile(p); !errors.As(err, &de) || !de.MetaFallback {
		t.Fatalf("meta page 0 torn, %d-byte pages: %v, want a fallback to meta page 1", pageSize, err)
	}
	// And bbolt agrees: it opens the file.
	db, err = bolt.Open(p, 0o600, &bolt.Options{ReadOnly: true})
	if err != nil {
		t.Fatalf("bbolt on the same file: %v", err)
	}
	db.Close()
}

// TestApplyMeetsDamage: damage that Open does not read, met later when
// the journal is applied (in the applier's goroutine, where nothing
// recovers), fails the apply and stops signing instead of ending the
// process. Every page of a small database is zeroed in turn; the store is
// opened, signs, and is made to apply; whatever happens, the test process
// lives, and some damage is met this way.
func TestApplyMeetsDamage(t *testing.T) {
	ctx := context.Background()
	src := smallDatabase(t)
	ps := os.Getpagesize()
	met := 0
	for p := 2; p < len(src)/ps; p++ {
		b := append([]byte(nil), src...)
		clear(b[p*ps : (p+1)*ps])
		dir := t.TempDir()
		path := filepath.Join(dir, "signerd.db")
		if err := os.WriteFile(path, b, 0o600); err != nil {
			t.Fatal(err)
		}
		st, err := Open(ctx, path, Options{JournalSize: minJournalSize << 4})
		if err != nil {
			continue // refused at Open: TestOpenDamagedFile's case
		}
		rec := store.SignatureRecord{Digest: indexDigest(1000+p, 1), Format: store.FormatCloacina, KeyName: "release", KeyVersion: 1,
			Fingerprint: "SHA256:test", Algorithm: "ed25519", Signature: []byte(fmt.Sprint(p)), SignedAt: time.Unix(9, 0).UTC()}
		_ = Guard(path, func() error {
			return st.PutSignature(ctx, rec, store.AuditEvent{Caller: "uid:1", Operation: "sign", Outcome: "ok"})
		})
		err = st.Sync(ctx)
		if de := (*DamageError)(nil); errors.As(err, &de) {
			met++
			if herr := st.CheckHealth(ctx); herr == nil {
				t.Errorf("page %d: the apply met damage, and health says nothing", p)
			}
			if perr := st.PutSignature(ctx, rec, store.AuditEvent{Caller: "uid:1", Operation: "sign", Outcome: "ok"}); perr == nil {
				t.Errorf("page %d: signing goes on after the apply met damage", p)
			}
		}
		_ = Guard(path, st.Close)
	}
	t.Logf("%d pages zeroed; the apply met damage in %d", len(src)/ps-2, met)
	if met == 0 {
		t.Fatal("no damage was met by an apply")
	}
}

// smallDatabase is the bytes of a closed database of 300 signatures, to
// damage.
func smallDatabase(t *testing.T) []byte {
	t.Helper()
	s := openTemp(t)
	for i := range 300 {
		putSig(t, s, i, 50)
	}
	path := s.Path()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	src, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return src
}

// TestMergeMeetsDamage: the digest index's merge runs in its own
// goroutine, where no call's recovery is. A file cut short under the
// store (the pages past its new end fault when read through bbolt's map)
// fails the merge, counted and kept for the next one, instead of ending
// the process.
func TestMergeMeetsDamage(t *testing.T) {
	path := filepath.Join(t.TempDir(), "signerd.db")
	s, err := Open(context.Background(), path, Options{IndexMergeAt: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 50 {
		putSig(t, s, i, 50)
	}
	if err := s.Sync(context.Background()); err != nil {
		t.Fatal(err)
	}
	if n := s.idx.len(); n != 50 {
		t.Fatalf("%d index entries pending, want 50", n)
	}
	// Both meta pages stay; every other page is gone.
	if err := os.Truncate(path, 2*int64(os.Getpagesize())); err != nil {
		t.Fatal(err)
	}
	s.mergeMu.Lock()
	done := s.startMergeLocked()
	s.mergeMu.Unlock()
	<-done
	s.mergeMu.Lock()
	mergeErr := s.mergeErr
	s.mergeMu.Unlock()
	if de := (*DamageError)(nil); !errors.As(mergeErr, &de) {
		t.Fatalf("merge over a truncated file: %v, want a *DamageError", mergeErr)
	}
	if st := s.IndexStats(); st.MergeFailures != 1 || st.Pending != 50 {
		t.Fatalf("IndexStats = %+v, want one failure and the 50 entries still pending", st)
	}
	_ = Guard(path, s.Close)
}
