package boltstore

import (
	"encoding/binary"
	"fmt"

	bolt "go.etcd.io/bbolt"

	"github.com/signerd/signerd/internal/errdefs"
	"github.com/signerd/signerd/internal/store"
)

// migration brings the schema from version-1 to version. fn runs inside the
// single Update transaction of Open, together with every other pending
// migration and the version bump, so a failed migration leaves the file as
// it was.
type migration struct {
	version int
	name    string
	fn      func(*bolt.Tx) error
}

// migrations MUST be ordered by version, numbered from 1 without gaps, and
// never edited once released: a schema change is a new entry at the end,
// and TestMigrations fails until that entry has a test.
var migrations = []migration{
	{version: 1, name: "create buckets", fn: migrateCreateBuckets},
	{version: 2, name: "audit checkpoints", fn: migrateAuditCheckpoints},
	{version: 3, name: "transparency log tree", fn: migrateLogTree},
	{version: 4, name: "signature records keyed by their audit record", fn: migrateSignatureKeys},
	{version: 5, name: "signature records in audit order, with a log-structured digest index", fn: migrateSignatureIndex},
	{version: 6, name: "tree nodes keyed in creation order", fn: migrateTreeNodeOrder},
	{version: 7, name: "signing path journal", fn: migrateJournal},
}

// schemaVersion is the version this code writes and understands.
func schemaVersion() int { return migrations[len(migrations)-1].version }

// minReadOnlyVersion is the oldest schema a read-only open reads as it is
// (an evidence copy is not migrated): schemas 4 to 6 only changed where
// new signature records and tree nodes go, and the readers read the older
// places too.
const minReadOnlyVersion = 3

func migrateCreateBuckets(tx *bolt.Tx) error {
	root, err := tx.CreateBucketIfNotExists(bucketKeyRoot)
	if err != nil {
		return err
	}
	for _, name := range [][]byte{
		bucketKeyKeys, bucketKeyFingerprints, bucketKeyCKAIDs, bucketKeyOrgs,
		bucketKeySignatures, bucketKeyAudit, bucketKeyMeta,
	} {
		if _, err := root.CreateBucketIfNotExists(name); err != nil {
			return fmt.Errorf("bucket %s: %w", name, err)
		}
	}
	return nil
}

// migrateAuditCheckpoints adds the bucket of signed audit checkpoints. The
// audit key itself lives under meta/audit_key, which needs no migration.
func migrateAuditCheckpoints(tx *bolt.Tx) error {
	root := tx.Bucket(bucketKeyRoot)
	if root == nil {
		return fmt.Errorf("bucket %s missing: %w", bucketKeyRoot, errdefs.ErrInternal)
	}
	if _, err := root.CreateBucketIfNotExists(bucketKeyCheckpoints); err != nil {
		return fmt.Errorf("bucket %s: %w", bucketKeyCheckpoints, err)
	}
	return nil
}

// migrateLogTree adds the Merkle tree of the audit log (tree.go): the
// node and signature-index buckets, and the tree of every record already
// logged, built in the migration's transaction so the file never has a log
// without its tree. Existing records are leaves as they are (version 1
// encodings, which carry no signature, so none enters the signature
// index); old checkpoints still verify through the unchanged chain.
func migrateLogTree(tx *bolt.Tx) error {
	root := tx.Bucket(bucketKeyRoot)
	if root == nil {
		return fmt.Errorf("bucket %s missing: %w", bucketKeyRoot, errdefs.ErrInternal)
	}
	for _, name := range [][]byte{bucketKeyTree, bucketKeySigLeaves} {
		if _, err := root.CreateBucketIfNotExists(name); err != nil {
			return fmt.Errorf("bucket %s: %w", name, err)
		}
	}
	meta, err := bucket(tx, bucketKeyMeta)
	if err != nil {
		return err
	}
	audit, err := bucket(tx, bucketKeyAudit)
	if err != nil {
		return err
	}
	head, _, err := readHead(meta)
	if err != nil {
		return err
	}
	// Leaves go in by the thousand: one tree head read and write per
	// chunk, and memory bounded whatever the log's length.
	const chunk = 1024
	var leaves [][]byte
	size := uint64(0)
	for seq := uint64(1); seq <= head; seq++ {
		rec, ok, err := getJSON[store.AuditRecord](audit, seqKey(seq))
		if err != nil {
			return fmt.Errorf("audit record %d: %w (verify a copy with signctl audit verify)", seq, err)
		}
		if !ok || rec.Seq != seq {
			return fmt.Errorf("audit record %d is missing or misplaced, so the log cannot become a tree (verify a copy with signctl audit verify): %w",
				seq, errdefs.ErrFailedPrecondition)
		}
		leaves = append(leaves, store.LeafHash(rec))
		if len(leaves) == chunk || seq == head {
			if err := appendLeaves(tx, size, leaves); err != nil {
				return err
			}
			size += uint64(len(leaves))
			leaves = leaves[:0]
		}
	}
	return nil
}

// migrateSignatureKeys moves nothing: from schema 4 on, a new signature
// record's key names its audit record (signatureKey) and nothing more is
// written to sigleaves/, which keeps indexing the records logged under
// schema 3. Records keep their keys, so a digest's records still sort
// oldest first (older keys are below loggedKeyFlag). The version bump is
// what matters: a signerd that knows only schema 3 would look new
// signatures up in sigleaves/ alone, so it must refuse this file.
func migrateSignatureKeys(tx *bolt.Tx) error {
	_, err := bucket(tx, bucketKeySigLeaves)
	return err
}

// readVersion returns the schema version stored in tx; 0 for a file no
// migration has touched.
func readVersion(tx *bolt.Tx) (int, error) {
	root := tx.Bucket(bucketKeyRoot)
	if root == nil {
		return 0, nil
	}
	raw := root.Get(keyVersion)
	if raw == nil {
		return 0, nil
	}
	v, n := binary.Uvarint(raw)
	if n <= 0 || n != len(raw) {
		return 0, fmt.Errorf("schema version %x is not a uvarint: %w", raw, errdefs.ErrFailedPrecondition)
	}
	return int(v), nil
}

func writeVersion(tx *bolt.Tx, v int) error {
	root := tx.Bucket(bucketKeyRoot)
	if root == nil {
		return fmt.Errorf("bucket %s missing after migration: %w", bucketKeyRoot, errdefs.ErrInternal)
	}
	return root.Put(keyVersion, binary.AppendUvarint(nil, uint64(v)))
}

// errNewerSchema is the refusal to touch a file written by a newer signerd:
// this code cannot know what the newer schema means, and writing to it
// could corrupt it.
func errNewerSchema(path string, have int) error {
	return fmt.Errorf("database %s has schema version %d, newer than this signerd understands (%d): upgrade signerd or use a backup: %w",
		path, have, schemaVersion(), errdefs.ErrFailedPrecondition)
}

// migrate applies, in order, every migration with from < version <= to and
// records to as the schema version. It returns the version found.
func migrate(tx *bolt.Tx, path string, to int) (from int, err error) {
	from, err = readVersion(tx)
	if err != nil {
		return 0, fmt.Errorf("database %s: %w", path, err)
	}
	if from > schemaVersion() {
		return from, errNewerSchema(path, from)
	}
	if from >= to {
		return from, nil
	}
	for _, m := range migrations {
		if m.version <= from || m.version > to {
			continue
		}
		if err := m.fn(tx); err != nil {
			return from, fmt.Errorf("database %s: migration %d (%s): %w", path, m.version, m.name, err)
		}
	}
	return from, writeVersion(tx, to)
}

// migrateSignatureIndex moves nothing either: from schema 5 on, a new
// signature record is appended under its audit seq in sigrecords/ and
// indexed by digest in sigindex/ (sigindex.go); signatures/ keeps the
// records of earlier schemas, which the readers merge in key order. The
// watermark starts at 0 (no record yet). A signerd that knows only schema
// 4 would not see the new records, so it must refuse this file.
func migrateSignatureIndex(tx *bolt.Tx) error {
	root := tx.Bucket(bucketKeyRoot)
	if root == nil {
		return fmt.Errorf("bucket %s missing: %w", bucketKeyRoot, errdefs.ErrInternal)
	}
	for _, name := range [][]byte{bucketKeySigRecords, bucketKeySigIndex} {
		if _, err := root.CreateBucketIfNotExists(name); err != nil {
			return fmt.Errorf("bucket %s: %w", name, err)
		}
	}
	meta, err := bucket(tx, bucketKeyMeta)
	if err != nil {
		return err
	}
	return meta.Put(keySigIndexMark, seqKey(0))
}

// migrateTreeNodeOrder moves nothing: it records the tree's size, so that
// the nodes complete by then are read under their level-and-index keys and
// every later one is written and read under its position in creation order
// (nodeLayout). A signerd that knows only schema 5 would read the new
// nodes as missing, so it must refuse this file.
func migrateTreeNodeOrder(tx *bolt.Tx) error {
	meta, err := bucket(tx, bucketKeyMeta)
	if err != nil {
		return err
	}
	size, _, err := readHead(meta)
	if err != nil {
		return err
	}
	return meta.Put(keyTreeOrderFrom, seqKey(size))
}

// migrateJournal records that the journal (journal.go) starts at its
// beginning. It moves nothing, but a signerd that knows only schema 6
// would ignore a journal's records not yet applied and write other
// records at their seqs, so it must refuse this file.
func migrateJournal(tx *bolt.Tx) error {
	meta, err := bucket(tx, bucketKeyMeta)
	if err != nil {
		return err
	}
	return meta.Put(keyJournalPos, binary.BigEndian.AppendUint64(nil, 0))
}
