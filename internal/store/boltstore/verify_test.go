package boltstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	bolt "go.etcd.io/bbolt"

	"github.com/signerd/signerd/internal/store"
)

// writeLog creates a database at path whose audit log holds n records,
// written by the real append code in one transaction (fast, and the same
// bytes the store writes one by one).
func writeLog(t *testing.T, path string, n int) {
	t.Helper()
	s, err := Open(context.Background(), path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	err = s.db.Update(func(tx *bolt.Tx) error {
		for i := 1; i <= n; i++ {
			ev, _ := store.PrepareEvent(store.AuditEvent{Caller: "uid:1000", Operation: "sign", Key: fmt.Sprintf("k%d", i), Outcome: "ok"})
			if _, err := appendAudit(tx, ev); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

// Raw edits of the audit bucket, as an attacker with the file would make.

func auditBucket(tx *bolt.Tx) *bolt.Bucket { return tx.Bucket(bucketKeyRoot).Bucket(bucketKeyAudit) }

func getRec(tx *bolt.Tx, key uint64) store.AuditRecord {
	var r store.AuditRecord
	if err := json.Unmarshal(auditBucket(tx).Get(seqKey(key)), &r); err != nil {
		panic(err)
	}
	return r
}

func putRec(tx *bolt.Tx, key uint64, r store.AuditRecord) error {
	raw, err := json.Marshal(r)
	if err != nil {
		return err
	}
	return auditBucket(tx).Put(seqKey(key), raw)
}

func editRec(key uint64, f func(*store.AuditRecord), rehash bool) func(*bolt.Tx) error {
	return func(tx *bolt.Tx) error {
		r := getRec(tx, key)
		f(&r)
		if rehash {
			r.Hash = store.HashAuditRecord(r)
		}
		return putRec(tx, key, r)
	}
}

func deleteRec(key uint64) func(*bolt.Tx) error {
	return func(tx *bolt.Tx) error { return auditBucket(tx).Delete(seqKey(key)) }
}

func swapRecs(a, b uint64) func(*bolt.Tx) error {
	return func(tx *bolt.Tx) error {
		ra, rb := getRec(tx, a), getRec(tx, b)
		if err := putRec(tx, a, rb); err != nil {
			return err
		}
		return putRec(tx, b, ra)
	}
}

// insertRec makes room at key by moving records key..last up by one and
// stores a forged record with seq key that links to its predecessor and
// hashes correctly: the strongest forgery without rewriting later records.
func insertRec(key, last uint64) func(*bolt.Tx) error {
	return func(tx *bolt.Tx) error {
		for k := last; k >= key; k-- {
			if err := putRec(tx, k+1, getRec(tx, k)); err != nil {
				return err
			}
		}
		forged := getRec(tx, key)
		forged.Outcome, forged.Detail = "ok", "forged"
		forged.Hash = store.HashAuditRecord(forged)
		return putRec(tx, key, forged)
	}
}

func appendForged(last uint64) func(*bolt.Tx) error {
	return func(tx *bolt.Tx) error {
		prev := getRec(tx, last)
		r := prev
		r.Seq, r.PrevHash, r.Detail = last+1, prev.Hash, "forged"
		r.Hash = store.HashAuditRecord(r)
		return putRec(tx, last+1, r)
	}
}

func TestVerifyAuditDetectsTampering(t *testing.T) {
	const n = 10
	dir := t.TempDir()
	golden := filepath.Join(dir, "golden.db")
	writeLog(t, golden, n)

	tests := []struct {
		name     string
		tamper   func(*bolt.Tx) error
		wantSeq  uint64
		wantKind string // "" = intact
	}{
		{name: "untouched copy"},
		{name: "edit a field", tamper: editRec(5, func(r *store.AuditRecord) { r.Outcome = "denied" }, false), wantSeq: 5, wantKind: store.ChainEdited},
		{name: "edit the time", tamper: editRec(1, func(r *store.AuditRecord) { r.Time = r.Time.Add(1) }, false), wantSeq: 1, wantKind: store.ChainEdited},
		{name: "edit and re-hash", tamper: editRec(5, func(r *store.AuditRecord) { r.Detail = "x" }, true), wantSeq: 6, wantKind: store.ChainBrokenLink},
		{name: "edit and re-hash the last", tamper: editRec(n, func(r *store.AuditRecord) { r.Detail = "x" }, true), wantSeq: n, wantKind: store.ChainEdited},
		{name: "delete one", tamper: deleteRec(5), wantSeq: 5, wantKind: store.ChainDeleted},
		{name: "delete the first", tamper: deleteRec(1), wantSeq: 1, wantKind: store.ChainDeleted},
		{name: "truncate the tail", tamper: deleteRec(n), wantSeq: n, wantKind: store.ChainDeleted},
		{name: "insert one", tamper: insertRec(5, n), wantSeq: 5, wantKind: store.ChainInserted},
		{name: "append past the head", tamper: appendForged(n), wantSeq: n + 1, wantKind: store.ChainInserted},
		{name: "swap two", tamper: swapRecs(3, 4), wantSeq: 3, wantKind: store.ChainReordered},
		{
			name: "move under another key", wantSeq: n, wantKind: store.ChainEdited,
			tamper: func(tx *bolt.Tx) error {
				r := getRec(tx, n)
				if err := deleteRec(n)(tx); err != nil {
					return err
				}
				return putRec(tx, n+2, r)
			},
		},
		{
			name: "unreadable record", wantSeq: 4, wantKind: store.ChainEdited,
			tamper: func(tx *bolt.Tx) error { return auditBucket(tx).Put(seqKey(4), []byte("{not json")) },
		},
		{
			name: "foreign key", wantSeq: n + 1, wantKind: store.ChainInserted,
			tamper: func(tx *bolt.Tx) error { return auditBucket(tx).Put([]byte("zz"), []byte("{}")) },
		},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			path := filepath.Join(dir, fmt.Sprintf("%d.db", i))
			copyFile(t, golden, path)
			if tt.tamper != nil {
				rawUpdate(t, path, tt.tamper)
			}
			s := openOK(t, path, Options{ReadOnly: true})
			checkChainErr(t, s.VerifyAudit(context.Background()), tt.wantSeq, tt.wantKind)
		})
	}
}

func checkChainErr(t *testing.T, err error, wantSeq uint64, wantKind string) {
	t.Helper()
	if wantKind == "" {
		if err != nil {
			t.Fatalf("VerifyAudit = %v, want nil", err)
		}
		return
	}
	var ce *store.ChainError
	if !errors.As(err, &ce) {
		t.Fatalf("VerifyAudit = %v, want a *store.ChainError", err)
	}
	if ce.Seq != wantSeq || ce.Kind != wantKind {
		t.Fatalf("VerifyAudit = seq %d %q (%v); want seq %d %q", ce.Seq, ce.Kind, err, wantSeq, wantKind)
	}
}

// TestVerifyAuditAcrossChunks checks a log longer than one verification
// chunk, including damage that straddles a chunk boundary, where telling
// "reordered" from "deleted" needs records of the next chunk.
func TestVerifyAuditAcrossChunks(t *testing.T) {
	const n = 2*verifyChunk + 50
	dir := t.TempDir()
	golden := filepath.Join(dir, "golden.db")
	writeLog(t, golden, n)
	for i, tt := range []struct {
		name     string
		tamper   func(*bolt.Tx) error
		wantSeq  uint64
		wantKind string
	}{
		{name: "intact"},
		{name: "swap across a chunk boundary", tamper: swapRecs(verifyChunk, verifyChunk+1), wantSeq: verifyChunk, wantKind: store.ChainReordered},
		{name: "delete in the second chunk", tamper: deleteRec(verifyChunk + 7), wantSeq: verifyChunk + 7, wantKind: store.ChainDeleted},
		{name: "edit in the last chunk", tamper: editRec(n-1, func(r *store.AuditRecord) { r.Caller = "root" }, false), wantSeq: n - 1, wantKind: store.ChainEdited},
		{name: "truncate the tail", tamper: deleteRec(n), wantSeq: n, wantKind: store.ChainDeleted},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			path := filepath.Join(dir, fmt.Sprintf("%d.db", i))
			copyFile(t, golden, path)
			if tt.tamper != nil {
				rawUpdate(t, path, tt.tamper)
			}
			s := openOK(t, path, Options{ReadOnly: true})
			checkChainErr(t, s.VerifyAudit(context.Background()), tt.wantSeq, tt.wantKind)
		})
	}
}

// TestAppendRefusesDamagedHead checks that a record already sitting past
// the head is never overwritten by the next append.
func TestAppendRefusesDamagedHead(t *testing.T) {
	path := filepath.Join(t.TempDir(), "db")
	writeLog(t, path, 3)
	rawUpdate(t, path, appendForged(3))
	s := openOK(t, path, Options{})
	if _, err := s.AppendAudit(context.Background(), store.AuditEvent{Operation: "x"}); err == nil {
		t.Fatal("AppendAudit overwrote a record past the head")
	}
	checkChainErr(t, s.VerifyAudit(context.Background()), 4, store.ChainInserted)
}

func TestAuditHeadEmpty(t *testing.T) {
	s := openTemp(t)
	seq, hash, err := s.AuditHead(context.Background())
	if err != nil || seq != 0 || len(hash) != store.AuditHashSize || string(hash) != string(store.GenesisHash()) {
		t.Fatalf("AuditHead of an empty log = %d %x, %v", seq, hash, err)
	}
	if err := s.VerifyAudit(context.Background()); err != nil {
		t.Fatalf("VerifyAudit of an empty log: %v", err)
	}
}
