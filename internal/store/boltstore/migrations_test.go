package boltstore

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	bolt "go.etcd.io/bbolt"

	"github.com/signerd/signerd/internal/errdefs"
	"github.com/signerd/signerd/internal/store"
	"github.com/signerd/signerd/internal/store/storetest"
)

// migrationTests holds one test per migration, by version. init (optional)
// runs on a database brought to version-1 and writes data in the old
// layout; check runs after the migration. TestMigrations fails while any
// migration lacks an entry: a schema change is not done until it is
// tested.
var migrationTests = map[int]struct {
	init  func(*bolt.Tx) error
	check func(*testing.T, *bolt.Tx)
}{
	1: {
		check: func(t *testing.T, tx *bolt.Tx) {
			for _, name := range [][]byte{
				bucketKeyKeys, bucketKeyFingerprints, bucketKeyCKAIDs, bucketKeyOrgs,
				bucketKeySignatures, bucketKeyAudit, bucketKeyMeta,
			} {
				if _, err := bucket(tx, name); err != nil {
					t.Error(err)
				}
			}
		},
	},
	2: {
		// A version-1 log with records and a head: the migration adds the
		// empty checkpoint bucket and leaves the log untouched.
		init: func(tx *bolt.Tx) error {
			for i := 0; i < 3; i++ {
				ev, _ := store.PrepareEvent(store.AuditEvent{Operation: "sign", Outcome: "ok"})
				if _, err := appendAuditV2(tx, ev); err != nil {
					return err
				}
			}
			return nil
		},
		check: func(t *testing.T, tx *bolt.Tx) {
			cps, err := bucket(tx, bucketKeyCheckpoints)
			if err != nil {
				t.Fatal(err)
			}
			if k, _ := cps.Cursor().First(); k != nil {
				t.Errorf("new checkpoint bucket holds %x", k)
			}
			meta, _ := bucket(tx, bucketKeyMeta)
			if seq, _, err := readHead(meta); err != nil || seq != 3 {
				t.Errorf("audit head after migration = %d, %v; want 3", seq, err)
			}
			if n := auditBucket(tx).Stats().KeyN; n != 3 {
				t.Errorf("%d audit records after migration, want 3", n)
			}
		},
	},
	3: {
		// A version-2 log of records written before the tree (no
		// signature field, so version 1 encodings): the migration builds
		// the tree of exactly those records and leaves them untouched.
		init: func(tx *bolt.Tx) error {
			for i := 0; i < 11; i++ {
				ev, _ := store.PrepareEvent(store.AuditEvent{Operation: "sign", Outcome: "ok", Digest: fmt.Sprintf("%064x", i)})
				if _, err := appendAuditV2(tx, ev); err != nil {
					return err
				}
			}
			return nil
		},
		check: func(t *testing.T, tx *bolt.Tx) {
			for _, name := range [][]byte{bucketKeyTree, bucketKeySigLeaves} {
				if _, err := bucket(tx, name); err != nil {
					t.Fatal(err)
				}
			}
			leaves := auditLeaves(t, tx)
			if len(leaves) != 11 {
				t.Fatalf("%d audit records after migration, want 11", len(leaves))
			}
			for size := uint64(1); size <= 11; size++ {
				root, err := store.TreeRoot(context.Background(), nodeReader(tx), size, 11)
				if err != nil {
					t.Fatalf("root of %d: %v", size, err)
				}
				if want := storetest.ReferenceRoot(leaves[:size]); !bytes.Equal(root, want) {
					t.Errorf("root of %d leaves = %x, want %x", size, root, want)
				}
			}
			meta, _ := bucket(tx, bucketKeyMeta)
			h, err := readTreeHead(meta, 11)
			if err != nil || len(h.Hashes) != 3 {
				t.Errorf("tree head after migration: %d hashes, %v; want 3 (11 = 8+2+1)", len(h.Hashes), err)
			}
		},
	},
	4: {
		// A signature recorded as schema 3 did: keyed by a bucket counter,
		// found through sigleaves/. The migration leaves both as they are
		// and the record is still found (TestMigrateSchema3Fixture does
		// the same on a file schema 3's code wrote).
		init: func(tx *bolt.Tx) error {
			sigs, _ := bucket(tx, bucketKeySignatures)
			n, err := sigs.NextSequence()
			if err != nil {
				return err
			}
			if err := sigs.Put(binary.BigEndian.AppendUint64(bytes.Repeat([]byte{7}, 32), n), []byte(`{"signature":"AQE="}`)); err != nil {
				return err
			}
			idx, _ := bucket(tx, bucketKeySigLeaves)
			return idx.Put(sigLeafKey(bytes.Repeat([]byte{7}, 32), []byte{1, 1}), seqKey(5))
		},
		check: func(t *testing.T, tx *bolt.Tx) {
			d := bytes.Repeat([]byte{7}, 32)
			sigs, _ := bucket(tx, bucketKeySignatures)
			k, _ := sigs.Cursor().First()
			if want := binary.BigEndian.AppendUint64(bytes.Clone(d), 1); !bytes.Equal(k, want) {
				t.Errorf("schema-3 signature key after migration = %x, want %x", k, want)
			}
			if _, logged := loggedSeq(k); logged {
				t.Errorf("schema-3 key %x read as naming an audit record", k)
			}
			if _, ok, err := loggedSignature(tx, d, []byte{1, 1}, nil); ok || err != nil {
				t.Errorf("schema-3 record found among records keyed by audit seq: %v, %v", ok, err)
			}
			if seq, ok, err := schema3SignatureLeaf(tx, d, []byte{1, 1}); seq != 5 || !ok || err != nil {
				t.Errorf("schema-3 index after migration = %d, %v, %v; want 5", seq, ok, err)
			}
		},
	},
	5: {
		// A signature recorded as schema 4 did, under signatures/ keyed by
		// its audit seq: it stays there, is still found, and the new
		// buckets start empty with the watermark at 0.
		init: func(tx *bolt.Tx) error {
			sigs, _ := bucket(tx, bucketKeySignatures)
			return sigs.Put(signatureKey(bytes.Repeat([]byte{8}, 32), 9), []byte(`{"signature":"AgI="}`))
		},
		check: func(t *testing.T, tx *bolt.Tx) {
			d := bytes.Repeat([]byte{8}, 32)
			for _, name := range [][]byte{bucketKeySigRecords, bucketKeySigIndex} {
				b, err := bucket(tx, name)
				if err != nil {
					t.Fatal(err)
				}
				if k, _ := b.Cursor().First(); k != nil {
					t.Errorf("new bucket %s holds %x", name, k)
				}
			}
			meta, _ := bucket(tx, bucketKeyMeta)
			if mark, err := readMark(meta); mark != 0 || err != nil || meta.Get(keySigIndexMark) == nil {
				t.Errorf("watermark after migration = %d, %v; want 0, written", mark, err)
			}
			sigs, _ := bucket(tx, bucketKeySignatures)
			if k, _ := sigs.Cursor().First(); !bytes.Equal(k, signatureKey(d, 9)) {
				t.Errorf("schema-4 signature key after migration = %x", k)
			}
			if seq, ok, err := loggedSignature(tx, d, []byte{2, 2}, nil); seq != 9 || !ok || err != nil {
				t.Errorf("schema-4 record after migration = %d, %v, %v; want 9", seq, ok, err)
			}
		},
	},
	6: {
		// A schema-5 log of 5 records: the migration records its size as
		// the watermark and leaves its nodes under their level keys, where
		// they are still read.
		init: func(tx *bolt.Tx) error { return appendLogRecords(tx, 5) },
		check: func(t *testing.T, tx *bolt.Tx) {
			meta, _ := bucket(tx, bucketKeyMeta)
			if l, err := readNodeLayout(meta); err != nil || l.from != 5 {
				t.Errorf("layout after migration = %+v, %v; want from 5", l, err)
			}
			tree, _ := bucket(tx, bucketKeyTree)
			if k, _ := tree.Cursor().Last(); k == nil || k[0] >= orderedNodePrefix {
				t.Errorf("last node key after migration = %x, want a level key", k)
			}
			leaves := auditLeaves(t, tx)
			for size := uint64(1); size <= 5; size++ {
				root, err := store.TreeRoot(context.Background(), nodeReader(tx), size, 5)
				if err != nil || !bytes.Equal(root, storetest.ReferenceRoot(leaves[:size])) {
					t.Errorf("root of %d leaves after migration = %x, %v", size, root, err)
				}
			}
		},
	},
	7: {
		// A schema-6 log of 3 records: nothing moves, and the journal
		// starts at its beginning.
		init: func(tx *bolt.Tx) error { return appendLogRecords(tx, 3) },
		check: func(t *testing.T, tx *bolt.Tx) {
			seq, _, pos, err := journalState(tx)
			if err != nil || seq != 3 || pos != 0 {
				t.Errorf("journal state after migration = %d, %d, %v; want head 3 at position 0", seq, pos, err)
			}
		},
	},
}

// auditLeaves returns the tree leaves of the records in audit/, in order.
func auditLeaves(t *testing.T, tx *bolt.Tx) [][]byte {
	t.Helper()
	var leaves [][]byte
	c := auditBucket(tx).Cursor()
	for k, v := c.First(); k != nil; k, v = c.Next() {
		r, err := decodeJSON[store.AuditRecord](k, v)
		if err != nil {
			t.Fatal(err)
		}
		leaves = append(leaves, store.EncodeAuditRecord(r))
	}
	return leaves
}

// appendAuditV2 appends a record as schema version 2 did: the record and
// the head, no tree (appendAudit now needs the buckets of migration 3).
func appendAuditV2(tx *bolt.Tx, ev store.AuditEvent) (store.AuditRecord, error) {
	meta := tx.Bucket(bucketKeyRoot).Bucket(bucketKeyMeta)
	seq, prev, err := readHead(meta)
	if err != nil {
		return store.AuditRecord{}, err
	}
	rec := store.AuditRecord{Seq: seq + 1, PrevHash: prev, AuditEvent: ev}
	rec.Hash = store.HashAuditRecord(rec)
	if err := putJSON(tx.Bucket(bucketKeyRoot).Bucket(bucketKeyAudit), seqKey(rec.Seq), rec); err != nil {
		return rec, err
	}
	return rec, meta.Put(keyAuditHead, append(seqKey(rec.Seq), rec.Hash...))
}

func TestMigrations(t *testing.T) {
	for i, m := range migrations {
		if m.version != i+1 {
			t.Fatalf("migrations[%d] (%s) has version %d: versions must be 1, 2, … in order", i, m.name, m.version)
		}
		if _, ok := migrationTests[m.version]; !ok {
			t.Errorf("migration %d (%s) has no test in migrationTests", m.version, m.name)
		}
	}
	if len(migrationTests) != len(migrations) {
		t.Errorf("migrationTests has %d entries for %d migrations", len(migrationTests), len(migrations))
	}

	for _, m := range migrations {
		mt := migrationTests[m.version]
		t.Run(fmt.Sprintf("%d %s", m.version, m.name), func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "db")
			db, err := bolt.Open(path, 0o600, nil)
			if err != nil {
				t.Fatal(err)
			}
			defer db.Close()
			step := func(what string, fn func(*bolt.Tx) error) {
				t.Helper()
				if err := db.Update(fn); err != nil {
					t.Fatalf("%s: %v", what, err)
				}
			}
			step("migrate to previous version", func(tx *bolt.Tx) error { _, err := migrate(tx, path, m.version-1); return err })
			if mt.init != nil {
				step("init", mt.init)
			}
			step("migrate", func(tx *bolt.Tx) error {
				from, err := migrate(tx, path, m.version)
				if err == nil && from != m.version-1 {
					err = fmt.Errorf("migrated from %d, want %d", from, m.version-1)
				}
				return err
			})
			if err := db.View(func(tx *bolt.Tx) error {
				if v, err := readVersion(tx); err != nil || v != m.version {
					t.Errorf("version after migration = %d, %v; want %d", v, err, m.version)
				}
				mt.check(t, tx)
				return nil
			}); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// openOK opens path, fails the test on error and closes at cleanup.
func openOK(t *testing.T, path string, opts Options) *Store {
	t.Helper()
	s, err := Open(context.Background(), path, opts)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// rawUpdate edits a closed database file directly with bbolt.
func rawUpdate(t *testing.T, path string, fn func(*bolt.Tx) error) {
	t.Helper()
	db, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if err := db.Update(fn); err != nil {
		t.Fatal(err)
	}
}

func fileVersion(t *testing.T, path string) int {
	t.Helper()
	db, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var v int
	if err := db.View(func(tx *bolt.Tx) error { v, err = readVersion(tx); return err }); err != nil {
		t.Fatal(err)
	}
	return v
}

// TestOpenOlderFiles opens files no migration has run on, and checks that
// Open brings them to the current schema and they then work.
func TestOpenOlderFiles(t *testing.T) {
	for _, tt := range []struct {
		name    string
		prepare func(t *testing.T, path string)
	}{
		{"empty file", func(t *testing.T, path string) {
			if err := os.WriteFile(path, nil, 0o600); err != nil {
				t.Fatal(err)
			}
		}},
		{"bbolt file without buckets", func(t *testing.T, path string) {
			rawUpdate(t, path, func(*bolt.Tx) error { return nil })
		}},
		{"root bucket without version", func(t *testing.T, path string) {
			rawUpdate(t, path, func(tx *bolt.Tx) error {
				root, err := tx.CreateBucket(bucketKeyRoot)
				if err != nil {
					return err
				}
				_, err = root.CreateBucket(bucketKeyAudit)
				return err
			})
		}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "db")
			tt.prepare(t, path)
			var logs bytes.Buffer
			s := openOK(t, path, Options{Logger: slog.New(slog.NewTextHandler(&logs, nil))})
			if !strings.Contains(logs.String(), "migrated database schema") {
				t.Errorf("no migration logged: %q", logs.String())
			}
			if _, err := s.AppendAudit(context.Background(), store.AuditEvent{Operation: "test"}); err != nil {
				t.Fatalf("AppendAudit after migration: %v", err)
			}
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			if v := fileVersion(t, path); v != schemaVersion() {
				t.Fatalf("schema version %d, want %d", v, schemaVersion())
			}
		})
	}
}

func setVersion(t *testing.T, path string, raw []byte) {
	t.Helper()
	rawUpdate(t, path, func(tx *bolt.Tx) error { return tx.Bucket(bucketKeyRoot).Put(keyVersion, raw) })
}

func TestOpenRefusesNewerSchema(t *testing.T) {
	path := filepath.Join(t.TempDir(), "db")
	if err := openOK(t, path, Options{}).Close(); err != nil {
		t.Fatal(err)
	}
	newer := schemaVersion() + 1
	setVersion(t, path, binary.AppendUvarint(nil, uint64(newer)))

	for _, ro := range []bool{false, true} {
		_, err := Open(context.Background(), path, Options{ReadOnly: ro})
		if !errors.Is(err, errdefs.ErrFailedPrecondition) || !strings.Contains(err.Error(), "newer than this signerd understands") {
			t.Fatalf("Open(ReadOnly=%v) of a newer schema: %v; want a clear ErrFailedPrecondition", ro, err)
		}
	}
	if v := fileVersion(t, path); v != newer {
		t.Fatalf("refused open changed the schema version to %d", v)
	}
}

func TestOpenRefusesBadVersion(t *testing.T) {
	path := filepath.Join(t.TempDir(), "db")
	if err := openOK(t, path, Options{}).Close(); err != nil {
		t.Fatal(err)
	}
	setVersion(t, path, []byte{0xff, 0xff})
	if _, err := Open(context.Background(), path, Options{}); !errors.Is(err, errdefs.ErrFailedPrecondition) {
		t.Fatalf("Open with an unreadable version: %v, want ErrFailedPrecondition", err)
	}
}

func TestOpenReadOnlyDoesNotMigrate(t *testing.T) {
	path := filepath.Join(t.TempDir(), "db")
	rawUpdate(t, path, func(*bolt.Tx) error { return nil })
	_, err := Open(context.Background(), path, Options{ReadOnly: true})
	if !errors.Is(err, errdefs.ErrFailedPrecondition) || !strings.Contains(err.Error(), "read-write once") {
		t.Fatalf("read-only Open of an unmigrated file: %v", err)
	}
	if v := fileVersion(t, path); v != 0 {
		t.Fatalf("read-only Open migrated to %d", v)
	}
}
