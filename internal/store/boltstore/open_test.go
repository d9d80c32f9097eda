package boltstore

import (
	"bytes"
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/signerd/signerd/internal/errdefs"
	"github.com/signerd/signerd/internal/store"
)

func TestFileMode(t *testing.T) {
	s := openTemp(t)
	fi, err := os.Stat(s.Path())
	if err != nil {
		t.Fatal(err)
	}
	if perm := fi.Mode().Perm(); perm != 0o600 {
		t.Fatalf("database created with mode %v, want 0600", perm)
	}
}

func TestLockContention(t *testing.T) {
	s := openTemp(t)
	for _, ro := range []bool{false, true} {
		// bbolt retries the lock every 50ms and gives up one retry early,
		// so the timeout must be a few retries long to be observable.
		const timeout = 200 * time.Millisecond
		start := time.Now()
		// Open runs aside so that a lock wait that ignores the timeout
		// fails here rather than hanging until go test's -timeout. The
		// bound is a generous "never" that no loaded machine reaches.
		done := make(chan error, 1)
		go func() {
			_, err := Open(context.Background(), s.Path(), Options{Timeout: timeout, ReadOnly: ro})
			done <- err
		}()
		var err error
		select {
		case err = <-done:
		case <-time.After(60 * time.Second):
			t.Fatalf("second Open(ReadOnly=%v) still waiting for the lock after 60s with a %v timeout", ro, timeout)
		}
		waited := time.Since(start)
		t.Logf("second Open(ReadOnly=%v) gave up after %v with a %v timeout", ro, waited, timeout)
		want := "database " + s.Path() + " is in use by another process (is signerd already running?)"
		if !errors.Is(err, errdefs.ErrUnavailable) || !strings.Contains(err.Error(), want) {
			t.Fatalf("second Open(ReadOnly=%v): %v; want ErrUnavailable saying %q", ro, err, want)
		}
		// It waited for the lock rather than failing at once. A lower
		// bound only: load can make the wait longer, never shorter.
		if waited < timeout/2 {
			t.Errorf("second Open gave up after %v with a %v timeout: it did not wait for the lock", waited, timeout)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	openOK(t, s.Path(), Options{Timeout: 50 * time.Millisecond})
}

func TestOpenErrors(t *testing.T) {
	dir := t.TempDir()
	garbage := filepath.Join(dir, "garbage")
	if err := os.WriteFile(garbage, bytes.Repeat([]byte("not a database "), 1024), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name    string
		path    string
		opts    Options
		wantErr error
	}{
		{"missing, read-only", filepath.Join(dir, "missing"), Options{ReadOnly: true}, errdefs.ErrNotFound},
		{"missing directory", filepath.Join(dir, "no", "db"), Options{}, errdefs.ErrNotFound},
		{"not a bbolt file", garbage, Options{}, errdefs.ErrFailedPrecondition},
	} {
		t.Run(tt.name, func(t *testing.T) {
			s, err := Open(context.Background(), tt.path, tt.opts)
			if err == nil {
				s.Close()
			}
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("Open: %v, want %v", err, tt.wantErr)
			}
		})
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := Open(ctx, filepath.Join(dir, "db"), Options{}); !errors.Is(err, context.Canceled) {
		t.Fatalf("Open with a canceled context: %v", err)
	}
}

// fill writes one of each kind of state and returns the signature digest.
func fill(t *testing.T, s *Store) []byte {
	t.Helper()
	ctx := context.Background()
	ev := func(op string) store.AuditEvent { return store.AuditEvent{Operation: op, Outcome: "ok"} }
	d := bytes.Repeat([]byte{7}, 32)
	k := store.Key{Name: "k", Algorithm: "ed25519", Versions: []store.KeyVersion{{Version: 1, CKAID: []byte{1}, Fingerprint: "fp1"}}}
	steps := []error{
		s.CreateKey(ctx, k, ev("key.create")),
		s.TrustKey(ctx, "acme", store.TrustedKey{Fingerprint: "fp1", TrustedAt: time.Now()}, ev("trust.add")),
		s.PutSignature(ctx, store.SignatureRecord{Digest: d, Format: store.FormatCloacina, KeyName: "k", Fingerprint: "fp1", Signature: []byte{1}}, ev("sign")),
	}
	if _, err := s.AppendAudit(ctx, ev("verify")); err != nil {
		steps = append(steps, err)
	}
	for _, err := range steps {
		if err != nil {
			t.Fatal(err)
		}
	}
	return d
}

func TestReopenPersists(t *testing.T) {
	ctx := context.Background()
	s := openTemp(t)
	d := fill(t, s)
	headSeq, headHash, err := s.AuditHead(ctx)
	if err != nil || headSeq != 4 {
		t.Fatalf("AuditHead = %d, %v; want 4", headSeq, err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	s = openOK(t, s.Path(), Options{})
	if _, err := s.GetKey(ctx, "k"); err != nil {
		t.Errorf("GetKey after reopen: %v", err)
	}
	if _, _, err := s.FindKeyVersion(ctx, "fp1"); err != nil {
		t.Errorf("FindKeyVersion after reopen: %v", err)
	}
	if o, err := s.GetOrg(ctx, "acme"); err != nil || len(o.Trusted) != 1 {
		t.Errorf("GetOrg after reopen: %+v, %v", o, err)
	}
	if sigs, err := s.SignaturesByDigest(ctx, d); err != nil || len(sigs) != 1 {
		t.Errorf("SignaturesByDigest after reopen: %d, %v", len(sigs), err)
	}
	seq, hash, err := s.AuditHead(ctx)
	if err != nil || seq != headSeq || !bytes.Equal(hash, headHash) {
		t.Fatalf("AuditHead after reopen = %d %x, %v; want %d %x", seq, hash, err, headSeq, headHash)
	}
	// The chain continues across the reopen.
	rec, err := s.AppendAudit(ctx, store.AuditEvent{Operation: "after"})
	if err != nil || rec.Seq != headSeq+1 || !bytes.Equal(rec.PrevHash, headHash) {
		t.Fatalf("AppendAudit after reopen = seq %d prev %x, %v", rec.Seq, rec.PrevHash, err)
	}
	if err := s.VerifyAudit(ctx); err != nil {
		t.Fatal(err)
	}
}

func TestReadOnly(t *testing.T) {
	ctx := context.Background()
	s := openTemp(t)
	fill(t, s)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	before, err := os.ReadFile(s.Path())
	if err != nil {
		t.Fatal(err)
	}

	// Several read-only opens share the lock (signctl audit verify --db).
	r1 := openOK(t, s.Path(), Options{ReadOnly: true})
	r2 := openOK(t, s.Path(), Options{ReadOnly: true})
	for _, r := range []*Store{r1, r2} {
		if err := r.VerifyAudit(ctx); err != nil {
			t.Fatalf("VerifyAudit read-only: %v", err)
		}
		if _, err := r.GetKey(ctx, "k"); err != nil {
			t.Fatalf("GetKey read-only: %v", err)
		}
	}
	_, err = r1.AppendAudit(ctx, store.AuditEvent{Operation: "x"})
	if !errors.Is(err, errdefs.ErrFailedPrecondition) {
		t.Fatalf("AppendAudit on a read-only store: %v, want ErrFailedPrecondition", err)
	}
	err = r1.SetRequireSignatures(ctx, "acme", true, store.AuditEvent{Operation: "x"})
	if !errors.Is(err, errdefs.ErrFailedPrecondition) {
		t.Fatalf("SetRequireSignatures on a read-only store: %v, want ErrFailedPrecondition", err)
	}
	r1.Close()
	r2.Close()
	after, err := os.ReadFile(s.Path())
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(before, after) {
		t.Fatal("read-only use changed the file")
	}
}

func TestClosedStore(t *testing.T) {
	s := openTemp(t)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := s.GetKey(context.Background(), "k"); !errors.Is(err, errdefs.ErrUnavailable) {
		t.Fatalf("GetKey on a closed store: %v, want ErrUnavailable", err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
}

// TestFailedOpenRemovesWhatItCreated: an open that creates the file and
// then fails removes the file and its journal; one that fails on a file
// that was there leaves it alone.
func TestFailedOpenRemovesWhatItCreated(t *testing.T) {
	path := filepath.Join(t.TempDir(), "signerd.db")
	_, err := Open(context.Background(), path, Options{JournalSize: minJournalSize - 1})
	if !errors.Is(err, errdefs.ErrInvalidArgument) {
		t.Fatalf("Open with a journal below the minimum: %v", err)
	}
	for _, p := range []string{path, journalPath(path)} {
		if _, err := os.Stat(p); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("a failed first open left %s behind (%v)", p, err)
		}
	}
	s := openOK(t, path, Options{JournalSize: 1 << 20})
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(context.Background(), path, Options{JournalSize: minJournalSize - 1}); err == nil {
		t.Fatal("Open with a journal below the minimum succeeded")
	}
	if _, err := os.Stat(path); err != nil {
		t.Errorf("a failed open removed a database that was there: %v", err)
	}
}
