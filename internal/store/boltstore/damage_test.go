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
	mergeErr := mergeNow(s)
	if de := (*DamageError)(nil); !errors.As(mergeErr, &de) {
		t.Fatalf("merge over a truncated file: %v, want a *DamageError", mergeErr)
	}
	if st := s.IndexStats(); st.MergeFailures != 1 || st.Pending != 50 {
		t.Fatalf("IndexStats = %+v, want one failure and the 50 entries still pending", st)
	}
	_ = Guard(path, s.Close)
}

// TestCloseMergeMeetsDamage: a page of sigindex/ is damaged (the
// journal's applies never read it). The daemon stops and calls Close with
// no Guard around it (internal/daemon/daemon.go). Close's own final merge
// meets the page and must not end the process; after a background merge
// already met it, Close does not merge again. The merge's transaction is
// rolled back cleanly, so the store is not wedged: Close closes the file.
func TestCloseMergeMeetsDamage(t *testing.T) {
	for _, background := range []bool{false, true} {
		t.Run(fmt.Sprintf("background merge first %v", background), func(t *testing.T) {
			s, path, root := mergedIndexStore(t)
			// sigindex/'s root page now names another page id: bbolt
			// panics on it.
			writeAt(t, path, int64(root)*int64(os.Getpagesize()), []byte{0xff, 0xff, 0xff, 0, 0, 0, 0, 0})
			if background {
				if de := (*DamageError)(nil); !errors.As(mergeNow(s), &de) {
					t.Fatalf("merge over a damaged sigindex/ page: want a *DamageError")
				}
			}
			if err := closeWithin(t, s); err != nil {
				t.Fatalf("Close: %v", err)
			}
			if s.w.get() != nil {
				t.Fatalf("a cleanly rolled back merge wedged the store: %v", s.w.get())
			}
		})
	}
}

// TestStopAfterApplyMeetsTruncation: the file cut to its two meta pages
// while signerd runs; the journal's next apply meets it (guarded, and its
// rollback faults re-reading the freelist page, so the store is wedged),
// then the daemon stops: Close returns instead of waiting for bbolt's
// writer lock.
func TestStopAfterApplyMeetsTruncation(t *testing.T) {
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
	if err := os.Truncate(path, 2*int64(os.Getpagesize())); err != nil {
		t.Fatal(err)
	}
	putSig(t, s, 50, 51)
	if de := (*DamageError)(nil); !errors.As(s.Sync(context.Background()), &de) {
		t.Fatal("apply after the cut: want a *DamageError")
	}
	wedgedClose(t, s)
}

// TestMergeMeetsDamageWedges: a damaged sigindex/ page and a damaged
// freelist page. The merge's write transaction panics on the first, and
// bbolt's rollback (in Update's deferred call) panics on the second, so
// bbolt's writer lock is never released. The store is wedged (wedge.go):
// health says so, signing is refused at once, and Close returns without
// waiting for the lock, where before the next apply and the stop hung.
func TestMergeMeetsDamageWedges(t *testing.T) {
	s, path, root := mergedIndexStore(t)
	ps := int64(os.Getpagesize())
	freelist := newestFreelist(t, path)
	writeAt(t, path, int64(root)*ps, []byte{0xff, 0xff, 0xff, 0, 0, 0, 0, 0}) // sigindex/'s root: another page id
	writeAt(t, path, freelist*ps+8, []byte{0x01, 0x00})                       // the freelist page's flags: a branch
	if de := (*DamageError)(nil); !errors.As(mergeNow(s), &de) {
		t.Fatal("merge: want a *DamageError")
	}
	if de := (*DamageError)(nil); !errors.As(s.CheckHealth(context.Background()), &de) {
		t.Fatalf("health after the merge wedged the store: %v, want a *DamageError", s.CheckHealth(context.Background()))
	}
	rec := store.SignatureRecord{Digest: indexDigest(450, 800), Format: store.FormatCloacina, KeyName: "release", KeyVersion: 1,
		Fingerprint: "SHA256:test", Algorithm: "ed25519", Signature: []byte("sig 450"), SignedAt: time.Unix(450, 0).UTC()}
	if de := (*DamageError)(nil); !errors.As(s.PutSignature(context.Background(), rec, store.AuditEvent{Caller: "uid:1", Operation: "sign", Outcome: "ok"}), &de) {
		t.Fatal("PutSignature on a wedged store: want a *DamageError")
	}
	wedgedClose(t, s)
}

// closeWithin closes s and returns Close's error, failing if Close does
// not return within a generous bound (a hang on a bbolt lock is what it
// catches).
func closeWithin(t *testing.T, s *Store) error {
	t.Helper()
	closed := make(chan error, 1)
	go func() { closed <- s.Close() }()
	select {
	case err := <-closed:
		return err
	case <-time.After(30 * time.Second):
		t.Fatal("Close hangs: a bbolt lock was left held by a recovered panic")
		return nil
	}
}

// wedgedClose closes s, which must be wedged: Close returns the damage.
func wedgedClose(t *testing.T, s *Store) {
	t.Helper()
	if err := closeWithin(t, s); !errors.As(err, new(*DamageError)) {
		t.Errorf("Close of a wedged store: %v, want a *DamageError", err)
	}
}

// TestReadBeginMeetsTruncation: the file cut below its meta pages while
// signerd runs. The next transaction faults as it begins, holding bbolt's
// meta lock, which every later transaction would wait for: reads and
// writes fail from then on instead of hanging, health says so, and Close
// returns.
func TestReadBeginMeetsTruncation(t *testing.T) {
	path := filepath.Join(t.TempDir(), "signerd.db")
	s, err := Open(context.Background(), path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	putSig(t, s, 1, 1)
	if err := s.Sync(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(path, 0); err != nil {
		t.Fatal(err)
	}
	// As a call's interceptor runs it.
	if de := (*DamageError)(nil); !errors.As(Guard(path, func() error { _, err := s.ListKeys(context.Background()); return err }), &de) {
		t.Fatal("ListKeys over a file cut below its meta pages: want a *DamageError")
	}
	done := make(chan error, 1)
	go func() { _, err := s.ListKeys(context.Background()); done <- err }()
	select {
	case err := <-done:
		if de := (*DamageError)(nil); !errors.As(err, &de) {
			t.Fatalf("the next read: %v, want a *DamageError", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the next read hangs on bbolt's meta lock")
	}
	if de := (*DamageError)(nil); !errors.As(s.CheckHealth(context.Background()), &de) {
		t.Fatal("health: want a *DamageError")
	}
	wedgedClose(t, s)
}

// TestCommitsMeetsTruncation: Commits, read by every metrics scrape in the
// metrics server's goroutine (no call's recovery there), survives a file
// cut below its meta pages without going back (it is a counter), and the
// store is closed without a hang.
func TestCommitsMeetsTruncation(t *testing.T) {
	path := filepath.Join(t.TempDir(), "signerd.db")
	s, err := Open(context.Background(), path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	putSig(t, s, 1, 1)
	before := s.Commits() // bbolt's transactions and the journal's groups
	if err := os.Truncate(path, 0); err != nil {
		t.Fatal(err)
	}
	done := make(chan uint64)
	go func() { done <- s.Commits() }()
	if n := <-done; n < before {
		t.Fatalf("Commits went from %d to %d: a counter never goes back", before, n)
	}
	wedgedClose(t, s)
}

// mergeNow runs a merge of the digest index and returns its outcome.
func mergeNow(s *Store) error {
	s.mergeMu.Lock()
	done := s.startMergeLocked()
	s.mergeMu.Unlock()
	<-done
	s.mergeMu.Lock()
	defer s.mergeMu.Unlock()
	return s.mergeErr
}

// mergedIndexStore opens a store whose digest index holds 400 records in
// sigindex/ and 50 more pending, and returns it with its path and the page
// id of sigindex/'s root, to damage.
func mergedIndexStore(t *testing.T) (*Store, string, uint64) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "signerd.db")
	s, err := Open(context.Background(), path, Options{IndexMergeAt: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 400 {
		putSig(t, s, i, 800)
	}
	if err := s.Sync(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := mergeNow(s); err != nil {
		t.Fatal(err)
	}
	var root uint64
	if err := s.db.View(func(tx *bolt.Tx) error {
		root = uint64(tx.Bucket(bucketKeyRoot).Bucket(bucketKeySigIndex).Root())
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	for i := 400; i < 450; i++ {
		putSig(t, s, i, 800)
	}
	if err := s.Sync(context.Background()); err != nil {
		t.Fatal(err)
	}
	return s, path, root
}

// writeAt writes b at off in the file at path, under the store's map.
func writeAt(t *testing.T, path string, off int64, b []byte) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteAt(b, off); err != nil {
		t.Fatal(err)
	}
}
