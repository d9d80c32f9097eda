package boltstore

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/signerd/signerd/internal/auditlog"
	"github.com/signerd/signerd/internal/errdefs"
	"github.com/signerd/signerd/internal/store"
	"github.com/signerd/signerd/internal/store/storetest"
)

// TestMigrateSchema2Fixture opens a database written by signerd before the
// transparency log (testdata/schema2.db, schema version 2, made by the
// program in testdata/README.md at commit 2adac6b): the migration builds
// the tree of its records, the old ECDSA checkpoints and state digests
// still verify with the old audit key, and the log goes on growing as a
// tree, across a restart.
func TestMigrateSchema2Fixture(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "db")
	raw, err := os.ReadFile("testdata/schema2.db")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, raw, 0o600); err != nil {
		t.Fatal(err)
	}
	pemBytes, err := os.ReadFile("testdata/schema2.audit.pub.pem")
	if err != nil {
		t.Fatal(err)
	}
	pub, err := auditlog.ParsePublicKeyPEM(pemBytes)
	if err != nil {
		t.Fatal(err)
	}
	if v := fileVersion(t, path); v != 2 {
		t.Fatalf("fixture has schema %d, want 2", v)
	}

	var logs bytes.Buffer
	s, err := Open(ctx, path, Options{Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(logs.String(), fmt.Sprintf("from=2 to=%d", schemaVersion())) {
		t.Errorf("migration not logged: %q", logs.String())
	}
	verify := func(wantLatest uint64) {
		t.Helper()
		rep, err := auditlog.Verify(ctx, s, pub)
		if err != nil {
			t.Fatalf("Verify after migration: %v", err)
		}
		if rep.Latest == nil || rep.Latest.Seq != wantLatest || rep.Checkpoints != 3 || rep.State == nil {
			t.Fatalf("Verify report: latest %+v, %d checkpoints, state %+v", rep.Latest, rep.Checkpoints, rep.State)
		}
	}
	head, _, err := s.AuditHead(ctx)
	if err != nil || head != 10 {
		t.Fatalf("fixture head %d, %v; want 10", head, err)
	}
	verify(head)
	storetest.CheckLog(t, s)

	// Records written before the tree carry no signature: the log cannot
	// prove which signature they were of, and says so.
	d := sha256.Sum256([]byte("artifact 0"))
	if _, err := s.SignatureLeaf(ctx, d[:], bytes.Repeat([]byte{1}, 64)); !errors.Is(err, errdefs.ErrNotFound) {
		t.Fatalf("SignatureLeaf of a signature logged before the tree: %v, want ErrNotFound", err)
	}

	// New records join the same tree; a new signature's leaf is found.
	sigs, err := s.SignaturesByDigest(ctx, d[:])
	if err != nil || len(sigs) != 1 {
		t.Fatalf("fixture signatures: %d, %v", len(sigs), err)
	}
	rec := sigs[0]
	rec.Signature = bytes.Repeat([]byte{0xaa}, 64)
	ev := store.AuditEvent{Operation: "sign", Key: "release@v1", Digest: hex.EncodeToString(d[:]), Outcome: "ok"}
	if err := s.PutSignature(ctx, rec, ev); err != nil {
		t.Fatal(err)
	}
	leaf, err := s.SignatureLeaf(ctx, d[:], rec.Signature)
	if err != nil || leaf != head {
		t.Fatalf("SignatureLeaf of a signature after migration = %d, %v; want %d", leaf, err, head)
	}
	verify(head) // no new checkpoint: the old ones still stand
	storetest.CheckLog(t, s)

	// A restart keeps the tree.
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s, err = Open(ctx, path, Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	verify(head)
	storetest.CheckLog(t, s)
}
