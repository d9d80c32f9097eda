package boltstore

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"math/bits"
	"path/filepath"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/signerd/signerd/internal/store"
	"github.com/signerd/signerd/internal/store/storetest"
)

// TestNodeLayoutCreationOrder appends leaves in batches of every size up
// to 9, as commits do, and checks that each node's key is its position in
// creation order (0, 1, 2, … with no gap, so one commit's nodes are one
// run at the end of tree/), while under a watermark the nodes complete by
// then keep their level-and-index keys.
func TestNodeLayoutCreationOrder(t *testing.T) {
	for _, from := range []uint64{0, 1, 6, 8, 100} {
		layout := nodeLayout{from: from}
		var (
			h    store.TreeHead
			next uint64 // the next ordered position
			prev []byte
		)
		leaf := 0
		for batch := 1; leaf < 300; batch = batch%9 + 1 {
			leaves := make([][]byte, batch)
			for i := range leaves {
				sum := sha256.Sum256(binary.BigEndian.AppendUint64(nil, uint64(leaf)))
				leaves[i] = sum[:]
				leaf++
			}
			var nodes []store.TreeNode
			var err error
			if h, nodes, err = store.AppendLeaves(h, leaves); err != nil {
				t.Fatal(err)
			}
			for _, n := range nodes {
				k := layout.key(n.ID)
				at, ok := completedAt(n.ID)
				if !ok {
					t.Fatalf("node %+v: no leaf count", n.ID)
				}
				if at <= from {
					if want := binary.BigEndian.AppendUint64([]byte{byte(n.ID.Level)}, n.ID.Index); !bytes.Equal(k, want) {
						t.Fatalf("from %d: node %+v (complete at %d) keyed %x, want its level key %x", from, n.ID, at, k, want)
					}
					continue
				}
				if k[0] != orderedNodePrefix || len(k) != 9 {
					t.Fatalf("from %d: node %+v keyed %x, not in creation order", from, n.ID, k)
				}
				// Positions count every node, those under their level key too.
				if next == 0 && from > 0 {
					next = 2*from - uint64(bits.OnesCount64(from))
				}
				if got := binary.BigEndian.Uint64(k[1:]); got != next {
					t.Fatalf("from %d: node %+v at position %d, want %d", from, n.ID, got, next)
				}
				if prev != nil && bytes.Compare(prev, k) >= 0 {
					t.Fatalf("from %d: key %x after %x", from, k, prev)
				}
				next++
				prev = k
			}
		}
	}
	// Nodes no tree can hold get the key nothing is stored under: none
	// panics, and none shares a real node's key (without the bound, 2n
	// wrapped and node (0, 2^63+1) read leaf 0; level 128 is the ordered
	// prefix as a byte).
	for _, id := range []store.NodeID{{Level: 63, Index: 1}, {Level: 64}, {Level: 128}, {Level: 0, Index: 1<<63 + 1}, {Level: 0, Index: ^uint64(0)}, {Level: 1, Index: 1 << 61}} {
		if _, ok := completedAt(id); ok {
			t.Errorf("completedAt(%+v) fits", id)
		}
		for _, l := range []nodeLayout{allByLevel, {}} {
			if k := l.key(id); !bytes.Equal(k, noNodeKey) {
				t.Errorf("layout %d: key(%+v) = %x, want the key of no node", l.from, id, k)
			}
		}
	}
}

// schema5Log makes a database at path at schema 5 holding a log of n
// records, its tree nodes keyed by level as schema 5 wrote them.
func schema5Log(t *testing.T, path string, n int) *bolt.DB {
	t.Helper()
	db, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Update(func(tx *bolt.Tx) error {
		if _, err := migrate(tx, path, 5); err != nil {
			return err
		}
		return appendLogRecords(tx, n)
	}); err != nil {
		t.Fatal(err)
	}
	return db
}

// appendLogRecords appends n sign records to the log in tx.
func appendLogRecords(tx *bolt.Tx, n int) error {
	for i := range n {
		ev, err := store.PrepareEvent(store.AuditEvent{Operation: "sign", Outcome: "ok", Digest: hexDigest(i)})
		if err != nil {
			return err
		}
		if _, err := appendAudit(tx, ev); err != nil {
			return err
		}
	}
	return nil
}

// TestNodeLayoutAcrossMigration is a schema-5 log of 11 records (its
// nodes keyed by level) migrated to schema 6, then grown past two powers
// of two: every root, inclusion and consistency proof reaches across the
// watermark, the old nodes keep their keys, and the new ones follow them
// in creation order.
func TestNodeLayoutAcrossMigration(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "db")
	db := schema5Log(t, path, 11)
	levelKeys := treeKeys(t, db)
	if len(levelKeys) != 2*11-3 {
		t.Fatalf("schema 5 wrote %d nodes for 11 leaves, want %d", len(levelKeys), 2*11-3)
	}
	for _, k := range levelKeys {
		if k[0] >= 64 {
			t.Fatalf("schema 5 wrote node key %x", k)
		}
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}

	s := openOK(t, path, Options{})
	for i := 11; i < 37; i++ {
		if _, err := s.AppendAudit(ctx, store.AuditEvent{Operation: "sign", Outcome: "ok", Digest: hexDigest(i)}); err != nil {
			t.Fatal(err)
		}
	}
	storetest.CheckLog(t, s)
	var keys [][]byte
	if err := s.db.View(func(tx *bolt.Tx) error {
		meta, _ := bucket(tx, bucketKeyMeta)
		if l, err := readNodeLayout(meta); err != nil || l.from != 11 {
			t.Errorf("layout after migration = %+v, %v; want from 11", l, err)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	db, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	keys = treeKeys(t, db)
	if len(keys) != 2*37-3 {
		t.Fatalf("%d nodes for 37 leaves, want %d", len(keys), 2*37-3)
	}
	if !equalKeys(keys[:len(levelKeys)], levelKeys) {
		t.Errorf("the migration or later appends moved the nodes of the first 11 leaves")
	}
	for i, k := range keys[len(levelKeys):] {
		want := binary.BigEndian.AppendUint64([]byte{orderedNodePrefix}, uint64(2*11-3+i))
		if !bytes.Equal(k, want) {
			t.Fatalf("node key %x after the watermark, want %x", k, want)
		}
	}
}

func hexDigest(i int) string {
	sum := sha256.Sum256(binary.BigEndian.AppendUint64(nil, uint64(i)))
	return hex.EncodeToString(sum[:])
}

func treeKeys(t *testing.T, db *bolt.DB) (keys [][]byte) {
	t.Helper()
	if err := db.View(func(tx *bolt.Tx) error {
		tree, err := bucket(tx, bucketKeyTree)
		if err != nil {
			return err
		}
		return tree.ForEach(func(k, _ []byte) error { keys = append(keys, bytes.Clone(k)); return nil })
	}); err != nil {
		t.Fatal(err)
	}
	return keys
}

func equalKeys(a, b [][]byte) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if !bytes.Equal(a[i], b[i]) {
			return false
		}
	}
	return true
}

// TestMigrateSchema5Fixture opens a database written by signerd's schema-5
// code (testdata/schema5.db, made by the program in testdata/README.md at
// commit 40904a4: 38 leaves, nodes keyed by level): read-only as it is,
// then migrated to schema 6 and grown, its log checks whole — every root
// and proof, old nodes and new — and the old nodes keep their keys.
func TestMigrateSchema5Fixture(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "db")
	copyFile(t, "testdata/schema5.db", path)
	if v := fileVersion(t, path); v != 5 {
		t.Fatalf("fixture has schema %d, want 5", v)
	}
	old := func() [][]byte {
		db, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true})
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		return treeKeys(t, db)
	}
	before := old()
	if len(before) != 2*38-3 {
		t.Fatalf("fixture holds %d nodes, want %d for 38 leaves", len(before), 2*38-3)
	}

	s, err := Open(ctx, path, Options{ReadOnly: true})
	if err != nil {
		t.Fatalf("read-only open of a schema-5 file: %v", err)
	}
	storetest.CheckLog(t, s)
	wantLeaf(t, s, sha256.Sum256([]byte("artifact 32")), fixtureSig(32), 37)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	s = openOK(t, path, Options{})
	for i := range 30 {
		d := sha256.Sum256([]byte(hexDigest(i)))
		rec := store.SignatureRecord{Digest: d[:], Format: store.FormatCloacina, KeyName: "release", KeyVersion: 1,
			Fingerprint: "f", Algorithm: "ed25519", Signature: fixtureSig(byte(i)), SignedAt: time.Now(), Document: []byte("{}")}
		ev := store.AuditEvent{Operation: "sign", Key: "release@v1", Digest: hex.EncodeToString(d[:]), Outcome: "ok"}
		if err := s.PutSignature(ctx, rec, ev); err != nil {
			t.Fatal(err)
		}
	}
	storetest.CheckLog(t, s)
	wantLeaf(t, s, sha256.Sum256([]byte("artifact 32")), fixtureSig(32), 37)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	after := old()
	if len(after) != 2*68-2 || !equalKeys(after[:len(before)], before) {
		t.Fatalf("after migration and 30 signatures: %d nodes, the fixture's kept: %v", len(after), equalKeys(after[:min(len(before), len(after))], before))
	}
	if k := after[len(before)]; k[0] != orderedNodePrefix {
		t.Errorf("first node after the migration keyed %x", k)
	}

	s, err = Open(ctx, path, Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = s.Close() }()
	storetest.CheckLog(t, s)
}

// TestVerifyTailCutBeforeMigration cuts the tail of a schema-5 log as a
// careful attacker would (records, head and tree head), leaving the
// nodes of the removed leaves. Schema 5's verification finds those nodes
// past the head; so must it after a read-write open has migrated the file
// with the watermark at the cut head, where a lookup under the new key
// alone would find nothing. A damaged watermark is a tree mismatch.
func TestVerifyTailCutBeforeMigration(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "db")
	db := schema5Log(t, path, 11)
	if err := db.Update(func(tx *bolt.Tx) error {
		for k := uint64(9); k <= 11; k++ {
			if err := auditBucket(tx).Delete(seqKey(k)); err != nil {
				return err
			}
		}
		r := getRec(tx, 8)
		meta, _ := bucket(tx, bucketKeyMeta)
		if err := meta.Put(keyAuditHead, append(seqKey(8), r.Hash...)); err != nil {
			return err
		}
		tree, _ := bucket(tx, bucketKeyTree)
		return meta.Put(keyTreeHead, tree.Get(allByLevel.key(store.NodeID{Level: 3, Index: 0})))
	}); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	cut := func() {
		t.Helper()
		s, err := Open(ctx, path, Options{ReadOnly: true})
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		checkChainErr(t, s.VerifyAudit(ctx), 9, store.ChainDeleted)
	}
	cut()
	if err := openOK(t, path, Options{}).Close(); err != nil {
		t.Fatal(err)
	}
	if v := fileVersion(t, path); v != schemaVersion() {
		t.Fatalf("schema %d after a read-write open", v)
	}
	cut()

	rawUpdate(t, path, func(tx *bolt.Tx) error {
		meta, _ := bucket(tx, bucketKeyMeta)
		return meta.Put(keyTreeOrderFrom, []byte{1, 2, 3})
	})
	s, err := Open(ctx, path, Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	// The tree is read through the watermark from its first leaf on.
	checkChainErr(t, s.VerifyAudit(ctx), 1, store.ChainTreeMismatch)
}
