package boltstore

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"os"
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
	raw, err := os.ReadFile("testdata/schema4.db")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, raw, 0o600); err != nil {
		t.Fatal(err)
	}
	if v := fileVersion(t, path); v != 4 {
		t.Fatalf("fixture has schema %d, want 4", v)
	}
	d0, d1 := sha256.Sum256([]byte("artifact 0")), sha256.Sum256([]byte("artifact 1"))
	sig := func(b byte) []byte { return bytes.Repeat([]byte{b}, 64) }
	var s *Store
	leafOf := func(d [32]byte, s2 []byte, want uint64) {
		t.Helper()
		leaf, err := s.SignatureLeaf(ctx, d[:], s2)
		if err != nil || leaf != want {
			t.Fatalf("SignatureLeaf(%x…, %x…) = %d, %v; want %d", d[:4], s2[:2], leaf, err, want)
		}
	}
	order := func(d [32]byte, want ...byte) {
		t.Helper()
		recs, err := s.SignaturesByDigest(ctx, d[:])
		if err != nil {
			t.Fatal(err)
		}
		var got []byte
		for _, r := range recs {
			got = append(got, r.Signature[0])
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("signatures over %x… oldest first: %v, want %v", d[:4], got, want)
		}
	}
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
	leafOf(d0, sig(1), 5)
	leafOf(d1, sig(2), 3)
	order(d0, 1, 3, 1)
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
	leafOf(d0, sig(1), 5)
	leafOf(d0, sig(3), 4)
	order(d0, 1, 3, 1)
	put := func(d [32]byte, b byte) {
		t.Helper()
		rec := store.SignatureRecord{Digest: d[:], Format: store.FormatCloacina, KeyName: "release", KeyVersion: 1,
			Fingerprint: "f", Algorithm: "ed25519", Signature: sig(b), SignedAt: time.Now(), Document: []byte("{}")}
		ev := store.AuditEvent{Operation: "sign", Key: "release@v1", Digest: hex.EncodeToString(d[:]), Outcome: "ok"}
		if err := s.PutSignature(ctx, rec, ev); err != nil {
			t.Fatal(err)
		}
	}
	put(d0, 3) // leaf 7: signature 3 again, now in sigrecords/
	leafOf(d0, sig(3), 7)
	put(d0, 9) // leaf 8: a new signature; the two reach a merge
	put(d1, 4) // leaf 9
	waitMerges(s)
	leafOf(d0, sig(3), 7)
	leafOf(d0, sig(9), 8)
	leafOf(d0, sig(1), 5)
	leafOf(d1, sig(4), 9)
	order(d0, 1, 3, 1, 3, 9)
	order(d1, 2, 4)
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
	leafOf(d0, sig(3), 7)
	leafOf(d1, sig(2), 3)
	order(d0, 1, 3, 1, 3, 9)
	exported(7)
	storetest.CheckLog(t, s)
}
