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

// TestMigrateSchema3Fixture opens a database written by signerd's schema-3
// code (testdata/schema3.db, made by the program in testdata/README.md at
// commit f9204cd): its signatures, found through the sigleaves/ index that
// schema wrote, keep their leaves and their order, and signatures recorded
// after the migration, keyed by their audit records, join them, over the
// same digest too.
func TestMigrateSchema3Fixture(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "db")
	raw, err := os.ReadFile("testdata/schema3.db")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, raw, 0o600); err != nil {
		t.Fatal(err)
	}
	if v := fileVersion(t, path); v != 3 {
		t.Fatalf("fixture has schema %d, want 3", v)
	}
	// Read-only, as audit verify --db opens an evidence copy: read as it
	// is, not migrated.
	ro, err := Open(ctx, path, Options{ReadOnly: true})
	if err != nil {
		t.Fatalf("read-only open of a schema-3 file: %v", err)
	}
	d0 := sha256.Sum256([]byte("artifact 0"))
	if leaf, err := ro.SignatureLeaf(ctx, d0[:], bytes.Repeat([]byte{1}, 64)); err != nil || leaf != 5 {
		t.Fatalf("read-only SignatureLeaf on schema 3 = %d, %v; want 5", leaf, err)
	}
	storetest.CheckLog(t, ro)
	if err := ro.Close(); err != nil {
		t.Fatal(err)
	}
	if v := fileVersion(t, path); v != 3 {
		t.Fatalf("a read-only open changed the schema to %d", v)
	}
	s, err := Open(ctx, path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = s.Close() }()

	d1 := sha256.Sum256([]byte("artifact 1"))
	// The fixture's leaves: 2 artifact 0 (signature 1), 3 artifact 1, 4
	// artifact 0 (signature 3), 5 artifact 0 (signature 1 again: the
	// latest is the one named).
	wantLeaf(t, s, d0, fixtureSig(1), 5)
	wantLeaf(t, s, d1, fixtureSig(2), 3)
	wantLeaf(t, s, d0, fixtureSig(3), 4)
	wantOrder(t, s, d0, 1, 3, 1)
	storetest.CheckLog(t, s)

	put := func(d [32]byte, b byte) {
		t.Helper()
		rec := store.SignatureRecord{Digest: d[:], Format: store.FormatCloacina, KeyName: "release", KeyVersion: 1,
			Fingerprint: "f", Algorithm: "ed25519", Signature: fixtureSig(b), SignedAt: time.Now(), Document: []byte("{}")}
		ev := store.AuditEvent{Operation: "sign", Key: "release@v1", Digest: hex.EncodeToString(d[:]), Outcome: "ok"}
		if err := s.PutSignature(ctx, rec, ev); err != nil {
			t.Fatal(err)
		}
	}
	head, _, err := s.AuditHead(ctx)
	if err != nil || head != 7 {
		t.Fatalf("fixture head %d, %v; want 7", head, err)
	}
	put(d0, 3) // leaf 7: signature 3 again, now keyed by its audit record
	put(d0, 9) // leaf 8: a new signature
	wantLeaf(t, s, d0, fixtureSig(3), 7)
	wantLeaf(t, s, d0, fixtureSig(9), 8)
	wantLeaf(t, s, d0, fixtureSig(1), 5)
	wantOrder(t, s, d0, 1, 3, 1, 3, 9)
	storetest.CheckLog(t, s)

	// Across a restart, read-only.
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if s, err = Open(ctx, path, Options{ReadOnly: true}); err != nil {
		t.Fatal(err)
	}
	wantLeaf(t, s, d0, fixtureSig(3), 7)
	wantLeaf(t, s, d1, fixtureSig(2), 3)
	wantOrder(t, s, d0, 1, 3, 1, 3, 9)
	storetest.CheckLog(t, s)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if v := fileVersion(t, path); v != schemaVersion() {
		t.Fatalf("schema after Open = %d, want %d", v, schemaVersion())
	}
}

// fixtureSig is the test fixtures' signature b: 64 bytes of b.
func fixtureSig(b byte) []byte { return bytes.Repeat([]byte{b}, 64) }

// wantLeaf asserts that sig over d is at leaf want of s's log.
func wantLeaf(t *testing.T, s *Store, d [32]byte, sig []byte, want uint64) {
	t.Helper()
	leaf, err := s.SignatureLeaf(context.Background(), d[:], sig)
	if err != nil || leaf != want {
		t.Fatalf("SignatureLeaf(%x…, %x…) = %d, %v; want %d", d[:4], sig[:2], leaf, err, want)
	}
}

// wantOrder asserts the first bytes of d's signatures in s, oldest first.
func wantOrder(t *testing.T, s *Store, d [32]byte, want ...byte) {
	t.Helper()
	recs, err := s.SignaturesByDigest(context.Background(), d[:])
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
