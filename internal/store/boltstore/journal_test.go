package boltstore

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/signerd/signerd/internal/errdefs"
	"github.com/signerd/signerd/internal/store"
	"github.com/signerd/signerd/internal/store/storetest"
)

// putSig records signature i (over one of k digests) without waiting for
// the journal to apply it.
func putSig(t *testing.T, s *Store, i, k int) store.SignatureRecord {
	t.Helper()
	rec := store.SignatureRecord{
		Digest: indexDigest(i, k), Format: store.FormatCloacina, KeyName: "release", KeyVersion: 1,
		Fingerprint: "SHA256:test", Algorithm: "ed25519", Signature: []byte(fmt.Sprintf("sig %d", i)),
		SignedAt: time.Date(2026, 12, 5, 0, 0, i%60, 0, time.UTC), Document: fmt.Appendf(nil, `{"n":%d}`, i),
	}
	ev := store.AuditEvent{Time: rec.SignedAt, Caller: "uid:1000", Operation: "sign", Key: "release", Outcome: "ok"}
	if err := s.PutSignature(context.Background(), rec, ev); err != nil {
		t.Fatalf("PutSignature %d: %v", i, err)
	}
	return rec
}

// bboltHead is the audit head in the file itself.
func bboltHead(t *testing.T, s *Store) uint64 {
	t.Helper()
	var seq uint64
	if err := s.db.View(func(tx *bolt.Tx) error {
		meta, err := bucket(tx, bucketKeyMeta)
		if err != nil {
			return err
		}
		seq, _, err = readHead(meta)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	return seq
}

// crashJournal stops s as a crash would: the journal's acknowledged
// records stay unapplied, the index unmerged.
func crashJournal(t *testing.T, s *Store) {
	t.Helper()
	abandonJournal(s)
	counters.Delete(s.db)
	if err := s.db.Close(); err != nil {
		t.Fatal(err)
	}
}

// checkAll checks the log and that every record in recs is found.
func checkAll(t *testing.T, s *Store, recs []store.SignatureRecord, wantSize uint64) {
	t.Helper()
	ctx := context.Background()
	if size, err := s.LogSize(ctx); err != nil || size != wantSize {
		t.Fatalf("log size %d (%v), want %d", size, err, wantSize)
	}
	if err := s.VerifyAudit(ctx); err != nil {
		t.Fatalf("VerifyAudit: %v", err)
	}
	storetest.CheckLog(t, s)
	for _, r := range recs {
		got, err := s.SignaturesByDigest(ctx, r.Digest)
		if err != nil {
			t.Fatal(err)
		}
		found := false
		for _, g := range got {
			found = found || bytes.Equal(g.Signature, r.Signature)
		}
		if !found {
			t.Fatalf("signature %q not found by its digest", r.Signature)
		}
		if _, err := s.SignatureLeaf(ctx, r.Digest, r.Signature); err != nil {
			t.Fatalf("SignatureLeaf(%q): %v", r.Signature, err)
		}
	}
}

// TestJournalRecovery: records acknowledged and never applied (a crash)
// are applied by the next Open, before it returns: a read-only open in
// between refuses the file and says why, and the log goes on after them.
func TestJournalRecovery(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "signerd.db")
	s := openOK(t, path, Options{})
	holdApplies(s)
	var recs []store.SignatureRecord
	for i := range 40 {
		recs = append(recs, putSig(t, s, i, 7))
		if i%10 == 0 {
			if _, err := s.AppendAudit(ctx, store.AuditEvent{Caller: "uid:1", Operation: "verify", Outcome: "denied"}); err != nil {
				t.Fatal(err)
			}
		}
	}
	if head, _, _ := s.AuditHead(ctx); head != 44 || bboltHead(t, s) != 0 {
		t.Fatalf("head %d, in bbolt %d: want 44 acknowledged and none applied", head, bboltHead(t, s))
	}
	crashJournal(t, s)

	_, err := Open(ctx, path, Options{ReadOnly: true})
	if !errors.Is(err, errdefs.ErrFailedPrecondition) || !strings.Contains(err.Error(), "44 audit records (seq 1 to 44)") {
		t.Fatalf("read-only Open with an unapplied journal: %v", err)
	}

	s = openOK(t, path, Options{})
	if got := bboltHead(t, s); got != 44 {
		t.Fatalf("after Open the file's head is %d, want 44", got)
	}
	recs = append(recs, putSig(t, s, 100, 7))
	checkAll(t, s, recs, 45)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	ro := openOK(t, path, Options{ReadOnly: true})
	checkAll(t, ro, recs, 45)
}

// TestJournalTornTail: a last frame that did not reach the disk whole
// (its group was never acknowledged) and whatever follows it are left
// out; what precedes it is applied, and new records chain after that.
func TestJournalTornTail(t *testing.T) {
	for _, damage := range []string{"payload", "header", "zeroed"} {
		t.Run(damage, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "signerd.db")
			s := openOK(t, path, Options{})
			holdApplies(s)
			var recs []store.SignatureRecord
			for i := range 10 {
				recs = append(recs, putSig(t, s, i, 3))
			}
			s.j.mu.Lock()
			last := s.j.unapplied[len(s.j.unapplied)-1]
			s.j.mu.Unlock()
			crashJournal(t, s)
			f, err := os.OpenFile(journalPath(path), os.O_RDWR, 0)
			if err != nil {
				t.Fatal(err)
			}
			switch damage {
			case "payload":
				_, err = f.WriteAt([]byte{'#'}, last.end-3)
			case "header":
				_, err = f.WriteAt([]byte{0xff}, last.off+5)
			case "zeroed":
				_, err = f.WriteAt(make([]byte, last.end-last.off), last.off)
			}
			if err == nil {
				err = f.Close()
			}
			if err != nil {
				t.Fatal(err)
			}
			s = openOK(t, path, Options{})
			defer s.Close()
			recs = append(recs[:9], putSig(t, s, 50, 3))
			checkAll(t, s, recs, 10)
		})
	}
}

// TestJournalWraps: a journal far smaller than the records written goes
// round many times, applying to make room, across crashes at every
// point of the ring; nothing acknowledged is lost and the log is whole.
func TestJournalWraps(t *testing.T) {
	path := filepath.Join(t.TempDir(), "signerd.db")
	opts := Options{JournalSize: 8 << 10}
	var recs []store.SignatureRecord
	n := 0
	for round := range 12 {
		s := openOK(t, path, opts)
		if s.j.size != 8<<10 {
			t.Fatalf("journal of %d bytes, want %d", s.j.size, 8<<10)
		}
		holdApplies(s)
		for range 17 + round {
			recs = append(recs, putSig(t, s, n, 11))
			n++
		}
		if round%3 == 2 {
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			continue
		}
		crashJournal(t, s)
	}
	if fi, err := os.Stat(journalPath(path)); err != nil || fi.Size() != 8<<10 {
		t.Fatalf("journal: %v, %v; want 8 KiB", fi, err)
	}
	s := openOK(t, path, opts)
	defer s.Close()
	checkAll(t, s, recs, uint64(n))
}

// TestJournalOrdersDirectWrites: writes outside the journal (keys, trust,
// checkpoints) append to the same chain while signers append through it;
// the chain has one order and no gap.
func TestJournalOrdersDirectWrites(t *testing.T) {
	ctx := context.Background()
	s := openTemp(t)
	var wg sync.WaitGroup
	errs := make(chan error, 100)
	for g := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 25 {
				if _, err := s.AppendAudit(ctx, store.AuditEvent{Caller: "uid:1", Operation: "verify", Outcome: "ok", Detail: fmt.Sprint(g, i)}); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	for i := range 10 {
		org := fmt.Sprintf("org%d", i)
		if err := s.SetRequireSignatures(ctx, org, true, store.AuditEvent{Caller: "uid:0", Operation: "trust.require", Outcome: "ok"}); err != nil {
			t.Fatal(err)
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	checkAll(t, s, nil, 110)
	recs, err := s.ListAudit(ctx, 0, 0)
	if err != nil || len(recs) != 110 {
		t.Fatalf("ListAudit: %d records, %v", len(recs), err)
	}
	for i, r := range recs {
		if r.Seq != uint64(i+1) {
			t.Fatalf("record %d has seq %d", i, r.Seq)
		}
	}
}

// TestJournalGroupCommit: concurrent signers share group commits (fewer
// groups than signatures), and each returns only once its group is on
// disk: every one is in the journal file when PutSignature returns.
func TestJournalGroupCommit(t *testing.T) {
	s := openTemp(t)
	holdApplies(s)
	const n = 64
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			putSig(t, s, i, n)
			// On disk now: the frame is in the file (no apply has run).
			want := []byte(`"signature":"` + base64.StdEncoding.EncodeToString(fmt.Appendf(nil, "sig %d", i)) + `"`)
			s.j.mu.Lock()
			var f *frame
			for _, u := range s.j.unapplied {
				if bytes.Contains(u.sig, want) {
					f = u
				}
			}
			s.j.mu.Unlock()
			if f == nil {
				t.Errorf("signature %d returned but not in the journal", i)
			}
		}()
	}
	wg.Wait()
	st := s.JournalStats()
	if st.Groups == 0 || st.Groups >= n || st.Unapplied != n || st.Applies != 0 {
		t.Fatalf("JournalStats = %+v: want fewer than %d groups, %d unapplied, no apply", st, n, n)
	}
	t.Logf("%d signatures in %d group commits", n, st.Groups)
	if err := s.Sync(context.Background()); err != nil {
		t.Fatal(err)
	}
	if st := s.JournalStats(); st.Unapplied != 0 || st.Applies != 1 {
		t.Fatalf("after Sync: %+v, want everything applied in one transaction", st)
	}
}

// TestJournalWriteFailure: when the journal cannot be written, signing
// fails (Unavailable) and keeps failing, reads go on, and the next Open
// applies every record acknowledged before the failure.
func TestJournalWriteFailure(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "signerd.db")
	s := openOK(t, path, Options{})
	holdApplies(s)
	var recs []store.SignatureRecord
	for i := range 5 {
		recs = append(recs, putSig(t, s, i, 5))
	}
	if err := s.CheckHealth(ctx); err != nil {
		t.Fatalf("CheckHealth of a working store: %v", err)
	}
	s.j.wmu.Lock()
	_ = s.j.f.Close() // the next write fails
	s.j.wmu.Unlock()
	rec := store.SignatureRecord{Digest: indexDigest(9, 5), Format: store.FormatCloacina, KeyName: "release", KeyVersion: 1,
		Fingerprint: "SHA256:test", Algorithm: "ed25519", Signature: []byte("lost"), SignedAt: time.Unix(9, 0).UTC()}
	for range 2 {
		err := s.PutSignature(ctx, rec, store.AuditEvent{Caller: "uid:1", Operation: "sign", Outcome: "ok"})
		if !errors.Is(err, errdefs.ErrUnavailable) {
			t.Fatalf("PutSignature with the journal failing: %v, want ErrUnavailable", err)
		}
	}
	checkAll(t, s, recs, 5) // applied from memory: reads go on
	// The daemon's health says what every Sign now says (it stayed
	// SERVING while nothing could be signed until a restart).
	if err := s.CheckHealth(ctx); err == nil || !strings.Contains(err.Error(), "signing stops until signerd restarts") {
		t.Fatalf("CheckHealth after a failed journal write: %v", err)
	}
	abandonJournal(s)
	counters.Delete(s.db)
	if err := s.db.Close(); err != nil {
		t.Fatal(err)
	}
	s = openOK(t, path, Options{})
	defer s.Close()
	checkAll(t, s, append(recs, putSig(t, s, 6, 5)), 6)
}

// TestJournalSizeMinimum: a journal too small to hold a group is refused
// at Open, and the database file is left usable.
func TestJournalSizeMinimum(t *testing.T) {
	path := filepath.Join(t.TempDir(), "signerd.db")
	for _, size := range []int64{1, 512, minJournalSize - 1} {
		s, err := Open(context.Background(), path, Options{JournalSize: size})
		if err == nil {
			_ = s.Close()
			t.Fatalf("Open with a %d-byte journal succeeded", size)
		}
		if !errors.Is(err, errdefs.ErrInvalidArgument) {
			t.Fatalf("Open with a %d-byte journal: %v, want InvalidArgument", size, err)
		}
	}
	s := openOK(t, path, Options{JournalSize: minJournalSize})
	putSig(t, s, 0, 11)
}
