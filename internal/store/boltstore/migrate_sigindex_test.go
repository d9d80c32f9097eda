package boltstore

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"path/filepath"
	"testing"
	"time"

	"github.com/signerd/signerd/internal/store"
	"github.com/signerd/signerd/internal/store/storetest"
)

// TestMigrateSchema4Fixture opens a database written by signerd's schema-4
// code (testdata/schema4.db, made by the program in testdata/README.md at
// commit fc46fe9): its signatures, keyed by digest and audit seq in
// signatures/, keep their leaves and their order after migration 5, and
// signatures recorded after it, appended to sigrecords/ and indexed in
// memory, then merged, join them over the same digest, read-write and
// read-only, across a restart.
func TestMigrateSchema4Fixture(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "db")
	copyFile(t, "testdata/schema4.db", path)
	if v := fileVersion(t, path); v != 4 {
		t.Fatalf("fixture has schema %d, want 4", v)
	}
	d0, d1 := sha256.Sum256([]byte("artifact 0")), sha256.Sum256([]byte("artifact 1"))
	var (
		s   *Store
		err error
	)
	exported := func(want int) {
		t.Helper()
		var n int
		if err := s.ForEachSignature(ctx, func(store.SignatureRecord) error { n++; return nil }); err != nil || n != want {
			t.Fatalf("ForEachSignature: %d records, %v; want %d", n, err, want)
		}
	}

	// Read-only, as audit verify --db opens an evidence copy: read as it
	// is, not migrated. The fixture's leaves: 2 artifact 0 (signature 1),
	// 3 artifact 1, 4 artifact 0 (signature 3), 5 artifact 0 (signature 1
	// again: the latest is the one named).
	if s, err = Open(ctx, path, Options{ReadOnly: true}); err != nil {
		t.Fatalf("read-only open of a schema-4 file: %v", err)
	}
	wantLeaf(t, s, d0, fixtureSig(1), 5)
	wantLeaf(t, s, d1, fixtureSig(2), 3)
	wantOrder(t, s, d0, 1, 3, 1)
	exported(4)
	storetest.CheckLog(t, s)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if v := fileVersion(t, path); v != 4 {
		t.Fatalf("a read-only open changed the schema to %d", v)
	}

	if s, err = Open(ctx, path, Options{IndexMergeAt: 2}); err != nil {
		t.Fatal(err)
	}
	wantLeaf(t, s, d0, fixtureSig(1), 5)
	wantLeaf(t, s, d0, fixtureSig(3), 4)
	wantOrder(t, s, d0, 1, 3, 1)
	put := func(d [32]byte, b byte) {
		t.Helper()
		rec := store.SignatureRecord{Digest: d[:], Format: store.FormatCloacina, KeyName: "release", KeyVersion: 1,
			Fingerprint: "f", Algorithm: "ed25519", Signature: fixtureSig(b), SignedAt: time.Now(), Document: []byte("{}")}
		ev := store.AuditEvent{Operation: "sign", Key: "release@v1", Digest: hex.EncodeToString(d[:]), Outcome: "ok"}
		if err := s.PutSignature(ctx, rec, ev); err != nil {
			t.Fatal(err)
		}
	}
	put(d0, 3) // leaf 7: signature 3 again, now in sigrecords/
	wantLeaf(t, s, d0, fixtureSig(3), 7)
	put(d0, 9) // leaf 8: a new signature; the two reach a merge
	put(d1, 4) // leaf 9
	waitMerges(s)
	wantLeaf(t, s, d0, fixtureSig(3), 7)
	wantLeaf(t, s, d0, fixtureSig(9), 8)
	wantLeaf(t, s, d0, fixtureSig(1), 5)
	wantLeaf(t, s, d1, fixtureSig(4), 9)
	wantOrder(t, s, d0, 1, 3, 1, 3, 9)
	wantOrder(t, s, d1, 2, 4)
	exported(7)
	storetest.CheckLog(t, s)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if v := fileVersion(t, path); v != schemaVersion() {
		t.Fatalf("schema after Open = %d, want %d", v, schemaVersion())
	}

	// Across a restart, read-only.
	if s, err = Open(ctx, path, Options{ReadOnly: true}); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = s.Close() }()
	wantLeaf(t, s, d0, fixtureSig(3), 7)
	wantLeaf(t, s, d1, fixtureSig(2), 3)
	wantOrder(t, s, d0, 1, 3, 1, 3, 9)
	exported(7)
	storetest.CheckLog(t, s)
}
