package boltstore

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/signerd/signerd/internal/errdefs"
	"github.com/signerd/signerd/internal/store"
	"github.com/signerd/signerd/internal/store/storetest"
)

// TestConformanceMerging runs the store conformance suite with merges of
// the digest index after every signature and after every third, so that
// every read it makes finds records in memory, in sigindex/ and in between
// (a merge running while it reads).
func TestConformanceMerging(t *testing.T) {
	for _, at := range []int{1, 3} {
		t.Run(fmt.Sprintf("merge at %d", at), func(t *testing.T) {
			storetest.Run(t, func(t *testing.T) store.Store {
				return openOK(t, filepath.Join(t.TempDir(), "signerd.db"), Options{IndexMergeAt: at})
			})
		})
	}
}

// indexDigest is the digest of record i's artifact: k distinct digests.
func indexDigest(i, k int) []byte {
	d := sha256.Sum256(fmt.Appendf(nil, "artifact %d", i%k))
	return d[:]
}

// putIndexed puts the i-th test signature over indexDigest(i, k).
func putIndexed(t *testing.T, s *Store, i, k int) store.SignatureRecord {
	t.Helper()
	rec := store.SignatureRecord{
		Digest:      indexDigest(i, k),
		Format:      store.FormatCloacina,
		KeyName:     "release",
		KeyVersion:  1,
		Fingerprint: "SHA256:test",
		Algorithm:   "ed25519",
		Signature:   binary.BigEndian.AppendUint64(bytes.Repeat([]byte{0xee}, 56), uint64(i)),
		SignedAt:    time.Date(2026, 12, 4, 0, 0, i, 0, time.UTC),
		Document:    fmt.Appendf(nil, `{"n":%d}`, i),
	}
	ev := store.AuditEvent{Time: rec.SignedAt, Caller: "uid:1000", Operation: "sign", Key: "release", Outcome: "ok"}
	if err := s.PutSignature(context.Background(), rec, ev); err != nil {
		t.Fatalf("PutSignature %d: %v", i, err)
	}
	// In bbolt, as the index tests read it there.
	if err := s.Sync(context.Background()); err != nil {
		t.Fatalf("Sync %d: %v", i, err)
	}
	return rec
}

// checkDigest asserts that SignaturesByDigest(d) and SignatureLeaf of each
// return exactly want, in order.
func checkDigest(t *testing.T, s *Store, d []byte, want []store.SignatureRecord) {
	t.Helper()
	ctx := context.Background()
	got, err := s.SignaturesByDigest(ctx, d)
	if err != nil {
		t.Fatalf("SignaturesByDigest: %v", err)
	}
	if len(got) != len(want) {
		t.Fatalf("SignaturesByDigest(%x) = %d records, want %d", d[:4], len(got), len(want))
	}
	for i := range want {
		if !bytes.Equal(got[i].Signature, want[i].Signature) || !got[i].SignedAt.Equal(want[i].SignedAt) {
			t.Fatalf("record %d of %x = signature …%x, want …%x", i, d[:4], got[i].Signature[56:], want[i].Signature[56:])
		}
		if _, err := s.SignatureLeaf(ctx, d, want[i].Signature); err != nil {
			t.Fatalf("SignatureLeaf of record %d of %x: %v", i, d[:4], err)
		}
	}
}

// diskIndex returns the watermark and the number of sigindex/ entries.
func diskIndex(t *testing.T, s *Store) (mark uint64, entries int) {
	t.Helper()
	err := s.db.View(func(tx *bolt.Tx) error {
		meta, _ := bucket(tx, bucketKeyMeta)
		idx, err := bucket(tx, bucketKeySigIndex)
		if err != nil {
			return err
		}
		entries = idx.Stats().KeyN
		mark, err = readMark(meta)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return mark, entries
}

// crashClose closes s's file as a crash would: without the merge Close
// does, so the records after the watermark are indexed only by the next
// Open.
func crashClose(t testing.TB, s *Store) {
	t.Helper()
	// The journal's records are in bbolt (these tests crash the index,
	// not the journal: journal_test.go does that).
	if err := s.Sync(context.Background()); err != nil {
		t.Fatal(err)
	}
	abandonJournal(s)
	counters.Delete(s.db)
	if err := s.db.Close(); err != nil {
		t.Fatal(err)
	}
}

// waitMerges waits for a background merge to end.
func waitMerges(s *Store) {
	s.mergeMu.Lock()
	done, running := s.mergeDone, s.merging
	s.mergeMu.Unlock()
	if running {
		<-done
	}
}

// TestSignatureIndexStages: every record is found by digest, in order,
// after each signature, whatever stage its index entry is at (in memory,
// merging, merged, and read back by Open), and the merged index holds one
// entry per record.
func TestSignatureIndexStages(t *testing.T) {
	tests := []struct {
		name           string
		mergeAt, chunk int
		n, digests     int
	}{
		{"never merged", 1000, 2048, 60, 7},
		{"merged every signature", 1, 2048, 40, 5},
		{"merged every 8, chunks of 3", 8, 3, 90, 11},
		{"one digest signed over and over", 5, 2, 50, 1},
		{"every digest distinct", 16, 4, 70, 1000},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "signerd.db")
			s, err := Open(context.Background(), path, Options{IndexMergeAt: tt.mergeAt})
			if err != nil {
				t.Fatal(err)
			}
			s.mergeChunk = tt.chunk
			byDigest := map[string][]store.SignatureRecord{}
			for i := 0; i < tt.n; i++ {
				rec := putIndexed(t, s, i, tt.digests)
				byDigest[string(rec.Digest)] = append(byDigest[string(rec.Digest)], rec)
				checkDigest(t, s, rec.Digest, byDigest[string(rec.Digest)])
			}
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			s = openOK(t, path, Options{IndexMergeAt: tt.mergeAt})
			if n := s.idx.len(); n != 0 {
				t.Errorf("%d entries pending after a clean close, want 0 (Close merges)", n)
			}
			if mark, entries := diskIndex(t, s); mark != uint64(tt.n) || entries != tt.n {
				t.Errorf("after close: watermark %d, %d index entries; want %d and %d", mark, entries, tt.n, tt.n)
			}
			for d, want := range byDigest {
				checkDigest(t, s, []byte(d), want)
			}
			checkExport(t, s, byDigest)
		})
	}
}

// checkExport asserts that ForEachSignature returns every record of want,
// by digest and oldest first within one.
func checkExport(t *testing.T, s *Store, want map[string][]store.SignatureRecord) {
	t.Helper()
	var digests []string
	for d := range want {
		digests = append(digests, d)
	}
	slices.Sort(digests)
	var all []store.SignatureRecord
	for _, d := range digests {
		all = append(all, want[d]...)
	}
	var got []store.SignatureRecord
	if err := s.ForEachSignature(context.Background(), func(r store.SignatureRecord) error {
		got = append(got, r)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if len(got) != len(all) {
		t.Fatalf("ForEachSignature: %d records, want %d", len(got), len(all))
	}
	for i := range all {
		if !bytes.Equal(got[i].Signature, all[i].Signature) {
			t.Fatalf("ForEachSignature record %d = …%x, want …%x", i, got[i].Signature[56:], all[i].Signature[56:])
		}
	}
}

// TestSignatureIndexCrash: a crash before a merge, or between the
// transactions of one, loses no record and duplicates none: Open indexes
// the records after the watermark again, and writing an entry twice is
// harmless.
func TestSignatureIndexCrash(t *testing.T) {
	for _, failAt := range []int{-1, 0, 1, 3} {
		name := "crash before any merge"
		if failAt >= 0 {
			name = fmt.Sprintf("crash at merge transaction %d", failAt)
		}
		t.Run(name, func(t *testing.T) {
			const n, digests = 20, 6
			path := filepath.Join(t.TempDir(), "signerd.db")
			s, err := Open(context.Background(), path, Options{IndexMergeAt: 1000})
			if err != nil {
				t.Fatal(err)
			}
			s.mergeChunk = 4
			byDigest := map[string][]store.SignatureRecord{}
			for i := 0; i < n; i++ {
				rec := putIndexed(t, s, i, digests)
				byDigest[string(rec.Digest)] = append(byDigest[string(rec.Digest)], rec)
			}
			if failAt >= 0 {
				crash := errors.New("crash")
				s.mergeHook = func(chunk int) error {
					if chunk == failAt {
						return crash
					}
					return nil
				}
				if err := s.mergeIndex(); !errors.Is(err, crash) {
					t.Fatalf("merge failing at transaction %d: %v", failAt, err)
				}
				mark, entries := diskIndex(t, s)
				if mark != 0 || entries != 4*failAt {
					t.Errorf("after the failed merge: watermark %d, %d entries; want 0 and %d", mark, entries, 4*failAt)
				}
				// Still all found, once each, from memory and the part
				// merged.
				for d, want := range byDigest {
					checkDigest(t, s, []byte(d), want)
				}
			}
			// The crash.
			crashClose(t, s)

			s = openOK(t, path, Options{IndexMergeAt: 1000})
			if got := s.idx.len(); got != n {
				t.Errorf("Open indexed %d records after the watermark, want %d", got, n)
			}
			for d, want := range byDigest {
				checkDigest(t, s, []byte(d), want)
			}
			checkExport(t, s, byDigest)
			if err := s.mergeIndex(); err != nil {
				t.Fatal(err)
			}
			if mark, entries := diskIndex(t, s); mark != n || entries != n {
				t.Errorf("after the merge: watermark %d, %d entries; want %d and %d", mark, entries, n, n)
			}
			if got := s.idx.len(); got != 0 {
				t.Errorf("%d entries pending after the merge, want 0", got)
			}
			for d, want := range byDigest {
				checkDigest(t, s, []byte(d), want)
			}
		})
	}
}

// TestSignatureIndexBound: signers arriving faster than merges finish
// wait once the pending index reaches throttleFactor times the merge
// threshold, so it holds at most that many entries plus one per signer in
// flight. Here every merge holds back until the signers have filled the
// pending index to that bound (or are done), the worst case.
func TestSignatureIndexBound(t *testing.T) {
	const mergeAt, signers, each = 8, 6, 60
	const bound = throttleFactor * mergeAt
	s := openOK(t, filepath.Join(t.TempDir(), "signerd.db"), Options{IndexMergeAt: mergeAt})
	s.mergeChunk = 2
	var done atomic.Bool
	s.mergeHook = func(int) error {
		for s.idx.len() < bound && !done.Load() {
			time.Sleep(100 * time.Microsecond)
		}
		return nil
	}
	var wg sync.WaitGroup
	for g := 0; g < signers; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < each; i++ {
				putIndexed(t, s, g*each+i, 1<<20)
			}
		}()
	}
	wg.Wait()
	done.Store(true)
	waitMerges(s)
	s.idx.mu.Lock()
	maxSeen := s.idx.peak
	s.idx.mu.Unlock()
	if maxSeen > bound+signers {
		t.Errorf("pending index reached %d entries, bound %d", maxSeen, bound+signers)
	}
	if maxSeen < bound {
		t.Errorf("pending index peaked at %d, below %d: the test did not reach the bound", maxSeen, bound)
	}
	t.Logf("pending index peaked at %d entries (threshold %d, bound %d + %d signers)", maxSeen, mergeAt, bound, signers)
}

// TestSignatureIndexLegacy: records of earlier schemas in signatures/
// (counter keys of schema 3, seq keys of schema 4) come first within their
// digest, before the records of schema 5 whether in memory or merged, and
// the export stays grouped by digest.
func TestSignatureIndexLegacy(t *testing.T) {
	path := filepath.Join(t.TempDir(), "signerd.db")
	s, err := Open(context.Background(), path, Options{IndexMergeAt: 1000})
	if err != nil {
		t.Fatal(err)
	}
	const digests = 3
	byDigest := map[string][]store.SignatureRecord{}
	legacy := func(i int, key func(d []byte) []byte) {
		rec := store.SignatureRecord{Digest: indexDigest(i, digests), Format: store.FormatCloacina, KeyName: "old", Fingerprint: "SHA256:old",
			Algorithm: "ed25519", Signature: binary.BigEndian.AppendUint64(bytes.Repeat([]byte{0xee}, 56), uint64(1000+i)),
			SignedAt: time.Date(2020, 1, 1, 0, 0, i, 0, time.UTC)}
		raw, _ := json.Marshal(rec)
		if err := s.db.Update(func(tx *bolt.Tx) error {
			sigs, _ := bucket(tx, bucketKeySignatures)
			return sigs.Put(key(rec.Digest), raw)
		}); err != nil {
			t.Fatal(err)
		}
		byDigest[string(rec.Digest)] = append(byDigest[string(rec.Digest)], rec)
	}
	for i := 0; i < 6; i++ {
		legacy(i, func(d []byte) []byte { return binary.BigEndian.AppendUint64(bytes.Clone(d), uint64(1+i)) })
	}
	// Seqs far below any this store will assign, as schema 4's were.
	for i := 0; i < 3; i++ {
		legacy(i, func(d []byte) []byte { return signatureKey(d, uint64(1+i)) })
	}
	for i := 0; i < 9; i++ {
		rec := putIndexed(t, s, i, digests)
		byDigest[string(rec.Digest)] = append(byDigest[string(rec.Digest)], rec)
		if i == 4 {
			if err := s.mergeIndex(); err != nil {
				t.Fatal(err)
			}
		}
	}
	ctx := context.Background()
	for d, want := range byDigest {
		got, err := s.SignaturesByDigest(ctx, []byte(d))
		if err != nil || len(got) != len(want) {
			t.Fatalf("SignaturesByDigest = %d records, %v; want %d", len(got), err, len(want))
		}
		for i := range want {
			if !bytes.Equal(got[i].Signature, want[i].Signature) {
				t.Errorf("record %d of %x = …%x, want …%x", i, []byte(d)[:4], got[i].Signature[56:], want[i].Signature[56:])
			}
		}
	}
	checkExport(t, s, byDigest)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	// A read-only open (an evidence copy) reads the same.
	ro := openOK(t, path, Options{ReadOnly: true})
	checkExport(t, ro, byDigest)
}

// TestSignatureIndexDamage: an index entry that names no record is
// reported as damage, not skipped.
func TestSignatureIndexDamage(t *testing.T) {
	path := filepath.Join(t.TempDir(), "signerd.db")
	s, err := Open(context.Background(), path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	rec := putIndexed(t, s, 0, 1)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	rawUpdate(t, path, func(tx *bolt.Tx) error {
		idx, _ := bucket(tx, bucketKeySigIndex)
		return idx.Put(signatureKey(rec.Digest, 77), []byte{})
	})
	s = openOK(t, path, Options{})
	if _, err := s.SignaturesByDigest(context.Background(), rec.Digest); !errors.Is(err, errdefs.ErrInternal) {
		t.Errorf("SignaturesByDigest with an entry naming a missing record: %v, want ErrInternal", err)
	}
}

func TestRecordDigest(t *testing.T) {
	d := bytes.Repeat([]byte{0xab}, 32)
	canonical, err := store.AppendSignatureRecordJSON(nil, store.SignatureRecord{Digest: d, Format: store.FormatCloacina, Signature: []byte{1}})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		raw  string
		want []byte // nil: an error
	}{
		{"the encoder's layout", string(canonical), d},
		{"spaced, so json.Unmarshal decides", `{ "digest" : "q6urq6urq6urq6urq6urq6urq6urq6urq6urq6urq6s=" }`, d},
		{"digest not first", `{"format":"x","digest":"q6urq6urq6urq6urq6urq6urq6urq6urq6urq6urq6s="}`, d},
		{"bad base64 in the fast path's place", `{"digest":"!!!!q6urq6urq6urq6urq6urq6urq6urq6urq6urq6s="}`, nil},
		{"short digest", `{"digest":"AAEC"}`, nil},
		{"no digest", `{"format":"x"}`, nil},
		{"not JSON", `{"digest":"`, nil},
		{"empty", ``, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := recordDigest([]byte(tt.raw))
			if tt.want == nil {
				if !errors.Is(err, errdefs.ErrInternal) {
					t.Errorf("recordDigest = %x, %v; want ErrInternal", got, err)
				}
				return
			}
			if err != nil || !bytes.Equal(got, tt.want) {
				t.Errorf("recordDigest = %x, %v; want %x", got, err, tt.want)
			}
		})
	}
}

// TestSignatureIndexFailingMerges: while every merge fails, signing goes
// on until twice the throttle's bound is pending, then is refused
// (Unavailable) rather than growing the pending index without bound; once
// a merge succeeds, signing resumes and every record is found.
func TestSignatureIndexFailingMerges(t *testing.T) {
	const mergeAt = 4
	const hard = 2 * throttleFactor * mergeAt
	s := openOK(t, filepath.Join(t.TempDir(), "signerd.db"), Options{IndexMergeAt: mergeAt})
	var failing atomic.Bool
	failing.Store(true)
	disk := errors.New("disk says no")
	s.mergeHook = func(int) error {
		if failing.Load() {
			return disk
		}
		return nil
	}
	// Only the signers' own syncs apply the journal, so the applies
	// count what throttle and admit do.
	holdApplies(s)
	applies0 := s.j.applies.Load()
	byDigest := map[string][]store.SignatureRecord{}
	var refused error
	i := 0
	for ; i < 10*hard && refused == nil; i++ {
		rec := store.SignatureRecord{Digest: indexDigest(i, 1<<20), Format: store.FormatCloacina, KeyName: "release",
			Fingerprint: "SHA256:test", Algorithm: "ed25519", Signature: []byte{byte(i), 1}, SignedAt: time.Unix(int64(i), 0).UTC()}
		refused = s.PutSignature(context.Background(), rec, store.AuditEvent{Caller: "uid:1", Operation: "sign", Outcome: "ok"})
		if refused == nil {
			byDigest[string(rec.Digest)] = append(byDigest[string(rec.Digest)], rec)
		}
	}
	if !errors.Is(refused, errdefs.ErrUnavailable) {
		t.Fatalf("after %d signatures with failing merges: %v, want ErrUnavailable", i, refused)
	}
	if n := s.idx.len(); n != hard {
		t.Errorf("refused with %d pending, want exactly %d (the bound)", n, hard)
	}
	// One apply at the throttle's bound (whose merge then fails) and
	// one at admit's, not one per signature in between.
	if n := s.j.applies.Load() - applies0; n > 3 {
		t.Errorf("%d applies of the journal for %d signatures with merges failing, want at most 3", n, i)
	}
	if st := s.IndexStats(); st.MergeFailures == 0 || st.Merges != 0 {
		t.Errorf("IndexStats = %+v, want failures and no merge", st)
	}
	failing.Store(false)
	rec := putIndexed(t, s, 1<<30, 1<<20) // admitted: the merge it forces succeeds
	byDigest[string(rec.Digest)] = append(byDigest[string(rec.Digest)], rec)
	if n := s.idx.len(); n > 1 {
		t.Errorf("%d pending after a successful merge, want at most 1", n)
	}
	for d, want := range byDigest {
		got, err := s.SignaturesByDigest(context.Background(), []byte(d))
		if err != nil || len(got) != len(want) || !bytes.Equal(got[0].Signature, want[0].Signature) {
			t.Fatalf("SignaturesByDigest = %d records, %v; want %d", len(got), err, len(want))
		}
	}
}

// TestSignatureIndexDamagedRecord: a record after the watermark whose
// digest cannot be read fails a read-write Open, which would otherwise
// leave it out of the index for good; a read-only Open, how a damaged file
// is examined, leaves it out and reads the rest.
func TestSignatureIndexDamagedRecord(t *testing.T) {
	path := filepath.Join(t.TempDir(), "signerd.db")
	s, err := Open(context.Background(), path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	good := putIndexed(t, s, 0, 2)
	bad := putIndexed(t, s, 1, 2)
	crashClose(t, s)
	rawUpdate(t, path, func(tx *bolt.Tx) error {
		recs, _ := bucket(tx, bucketKeySigRecords)
		return recs.Put(seqKey(2), []byte(`{"digest":"not base64 at all, nor 32 bytes"`))
	})
	if s, err := Open(context.Background(), path, Options{}); !errors.Is(err, errdefs.ErrInternal) {
		if err == nil {
			s.Close()
		}
		t.Fatalf("read-write Open over a damaged unindexed record: %v, want ErrInternal", err)
	}
	ro := openOK(t, path, Options{ReadOnly: true})
	checkDigest(t, ro, good.Digest, []store.SignatureRecord{good})
	if got, err := ro.SignaturesByDigest(context.Background(), bad.Digest); err != nil || len(got) != 0 {
		t.Errorf("damaged record's digest: %d records, %v; want none", len(got), err)
	}
}

// TestSignatureIndexRecordsMissing: with sigrecords/ gone (damage) and an
// index entry for digest A, signatureRecords reports the damage; it does
// not hand back the value the legacy cursor last read (a record of another
// digest B) as A's record. (Found by review.)
func TestSignatureIndexRecordsMissing(t *testing.T) {
	path := filepath.Join(t.TempDir(), "signerd.db")
	s, err := Open(context.Background(), path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	a, b := bytes.Repeat([]byte{1}, 32), bytes.Repeat([]byte{2}, 32)
	legacyB := store.SignatureRecord{Digest: b, Format: store.FormatCloacina, KeyName: "old", Signature: []byte("legacy B"), SignedAt: time.Unix(1, 0).UTC()}
	raw, _ := json.Marshal(legacyB)
	if err := s.db.Update(func(tx *bolt.Tx) error {
		sigs, _ := bucket(tx, bucketKeySignatures)
		return sigs.Put(signatureKey(b, 1), raw)
	}); err != nil {
		t.Fatal(err)
	}
	rec := store.SignatureRecord{Digest: a, Format: store.FormatCloacina, KeyName: "release", KeyVersion: 1, Fingerprint: "SHA256:test",
		Algorithm: "ed25519", Signature: bytes.Repeat([]byte{0xee}, 64), SignedAt: time.Unix(2, 0).UTC()}
	if err := s.PutSignature(context.Background(), rec, store.AuditEvent{Caller: "uid:1", Operation: "sign", Outcome: "ok"}); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil { // merges: A's entry is in sigindex/
		t.Fatal(err)
	}
	rawUpdate(t, path, func(tx *bolt.Tx) error { return tx.Bucket(bucketKeyRoot).DeleteBucket(bucketKeySigRecords) })

	ro := openOK(t, path, Options{ReadOnly: true})
	got, err := ro.SignaturesByDigest(context.Background(), a)
	if !errors.Is(err, errdefs.ErrInternal) {
		var sigs []string
		for _, r := range got {
			sigs = append(sigs, string(r.Signature)+" over "+string(r.Digest[:1]))
		}
		t.Errorf("SignaturesByDigest(A) with sigrecords/ missing = %q, %v; want ErrInternal", sigs, err)
	}
}

// TestSignatureIndexReadOnlyAdmit: a read-only store refuses writes with
// FailedPrecondition; admit does not start a merge on it and turn the
// refusal into Unavailable ("merges fail"). (Found by review.)
func TestSignatureIndexReadOnlyAdmit(t *testing.T) {
	path := filepath.Join(t.TempDir(), "signerd.db")
	s, err := Open(context.Background(), path, Options{IndexMergeAt: 1000})
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 8; i++ {
		putIndexed(t, s, i, 3)
	}
	crashClose(t, s)
	ro := openOK(t, path, Options{ReadOnly: true, IndexMergeAt: 1}) // hard bound 8
	rec := store.SignatureRecord{Digest: indexDigest(99, 3), Format: store.FormatCloacina, KeyName: "release", KeyVersion: 1,
		Fingerprint: "SHA256:test", Algorithm: "ed25519", Signature: []byte{1}, SignedAt: time.Unix(3, 0).UTC()}
	err = ro.PutSignature(context.Background(), rec, store.AuditEvent{Caller: "uid:1", Operation: "sign", Outcome: "ok"})
	if !errors.Is(err, errdefs.ErrFailedPrecondition) {
		t.Errorf("PutSignature on a read-only store with %d pending: %v; want ErrFailedPrecondition", ro.idx.len(), err)
	}
	if st := ro.IndexStats(); st.MergeFailures != 0 {
		t.Errorf("read-only store attempted %d merges", st.MergeFailures)
	}
}

// TestSignatureIndexPrunesLeftovers: an entry a signer adds after a merge
// already indexed its record (at or below the watermark) is dropped by the
// next merge even when that merge finds nothing new to write.
func TestSignatureIndexPrunesLeftovers(t *testing.T) {
	s := openOK(t, filepath.Join(t.TempDir(), "signerd.db"), Options{IndexMergeAt: 1000})
	rec := putIndexed(t, s, 0, 1)
	if err := s.mergeIndex(); err != nil {
		t.Fatal(err)
	}
	s.idx.add(rec.Digest, 1) // the late signer's entry
	if err := s.mergeIndex(); err != nil {
		t.Fatal(err)
	}
	if n := s.idx.len(); n != 0 {
		t.Errorf("%d entries pending after a merge with nothing new, want 0", n)
	}
	checkDigest(t, s, rec.Digest, []store.SignatureRecord{rec})
}
