package auditlog

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/signerd/signerd/internal/errdefs"
	"github.com/signerd/signerd/internal/store"
	"github.com/signerd/signerd/internal/store/boltstore"
)

// The verifier is tested on real bbolt files (written by boltstore, then
// tampered with directly through bbolt, as an attacker holding the file
// would), so it sees exactly what signctl sees offline.

const nRecords = 10

// checkpointAt lists the seqs the golden log has checkpoints at.
var checkpointAt = []uint64{3, 7, 10}

// writeGolden writes a log of nRecords records with checkpoints signed by
// key, and returns its path.
func writeGolden(t *testing.T, key *ecdsa.PrivateKey) string {
	t.Helper()
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "golden.db")
	s, err := boltstore.Open(ctx, path, boltstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	t0 := time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)
	next := 0
	for i := 1; i <= nRecords; i++ {
		r, err := s.AppendAudit(ctx, store.AuditEvent{Time: t0.Add(time.Duration(i) * time.Second), Caller: "uid:1000",
			Operation: "sign", Key: fmt.Sprintf("k%d@v1", i), Digest: fmt.Sprintf("%064x", i), Outcome: "ok"})
		if err != nil {
			t.Fatal(err)
		}
		if next < len(checkpointAt) && r.Seq == checkpointAt[next] {
			next++
			c, err := SignCheckpoint(key, store.Checkpoint{Seq: r.Seq, Hash: r.Hash, Time: r.Time, KeyFingerprint: Fingerprint(&key.PublicKey)})
			if err != nil {
				t.Fatal(err)
			}
			if c.Note, err = goldenNote(ctx, s, r.Seq); err != nil {
				t.Fatal(err)
			}
			if err := s.PutCheckpoint(ctx, c); err != nil {
				t.Fatal(err)
			}
		}
	}
	return path
}

// goldenLogKey signs the golden log's checkpoint notes. A software key:
// this package is pure (the daemon's notes are signed in the HSM and
// tested there, service and softhsm-test).
var goldenLogKey = ed25519.NewKeyFromSeed(bytes.Repeat([]byte{7}, ed25519.SeedSize))

const goldenOrigin = "signerd.test/log"

func goldenVerifierKey(t *testing.T) string {
	t.Helper()
	vkey, err := VerifierKey(goldenOrigin, goldenLogKey.Public().(ed25519.PublicKey))
	if err != nil {
		t.Fatal(err)
	}
	return vkey
}

// goldenNote is the checkpoint note of the first size leaves of s.
func goldenNote(ctx context.Context, s *boltstore.Store, size uint64) ([]byte, error) {
	signer, err := NewNoteSigner(goldenOrigin, goldenLogKey)
	if err != nil {
		return nil, err
	}
	root, err := s.LogRoot(ctx, size)
	if err != nil {
		return nil, err
	}
	return SignCheckpointNote(signer, size, root, nil)
}

// Raw bbolt edits. The bucket and key names are the on-disk schema
// documented in boltstore's doc.go.

func seqKey(n uint64) []byte { return binary.BigEndian.AppendUint64(nil, n) }

func sub(tx *bolt.Tx, name string) *bolt.Bucket { return tx.Bucket([]byte("v1")).Bucket([]byte(name)) }

func getRec(tx *bolt.Tx, n uint64) store.AuditRecord {
	var r store.AuditRecord
	if err := json.Unmarshal(sub(tx, "audit").Get(seqKey(n)), &r); err != nil {
		panic(fmt.Sprintf("record %d: %v", n, err))
	}
	return r
}

func putJSON(tx *bolt.Tx, bucket string, n uint64, v any) error {
	raw, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return sub(tx, bucket).Put(seqKey(n), raw)
}

func setHead(tx *bolt.Tx, n uint64) error {
	return sub(tx, "meta").Put([]byte("audit_head"), append(seqKey(n), getRec(tx, n).Hash...))
}

type tamper func(*bolt.Tx) error

func editField(n uint64) tamper {
	return func(tx *bolt.Tx) error {
		r := getRec(tx, n)
		r.Outcome = "denied"
		return putJSON(tx, "audit", n, r)
	}
}

func deleteRec(n uint64) tamper {
	return func(tx *bolt.Tx) error { return sub(tx, "audit").Delete(seqKey(n)) }
}

func swap(a, b uint64) tamper {
	return func(tx *bolt.Tx) error {
		ra, rb := getRec(tx, a), getRec(tx, b)
		if err := putJSON(tx, "audit", a, rb); err != nil {
			return err
		}
		return putJSON(tx, "audit", b, ra)
	}
}

// insert shifts records n.. up by one and puts a forged record at n that
// links to n-1 and hashes correctly.
func insert(n uint64) tamper {
	return func(tx *bolt.Tx) error {
		for k := uint64(nRecords); k >= n; k-- {
			if err := putJSON(tx, "audit", k+1, getRec(tx, k)); err != nil {
				return err
			}
		}
		f := getRec(tx, n)
		f.Detail = "forged"
		f.Hash = store.HashAuditRecord(f)
		return putJSON(tx, "audit", n, f)
	}
}

// recordTree is the Merkle tree of the records up to the head: its head
// and its nodes in creation order.
func recordTree(tx *bolt.Tx) (store.TreeHead, []store.TreeNode, error) {
	head := binary.BigEndian.Uint64(sub(tx, "meta").Get([]byte("audit_head"))[:8])
	leaves := make([][]byte, 0, head)
	for k := uint64(1); k <= head; k++ {
		leaves = append(leaves, store.LeafHash(getRec(tx, k)))
	}
	return store.AppendLeaves(store.TreeHead{}, leaves)
}

// rebuildTree rewrites the stored Merkle tree (boltstore's tree bucket
// and meta/tree_head) as the tree of the records up to the head, as a
// careful attacker who knows the schema would after editing records.
func rebuildTree(tx *bolt.Tx) error {
	root := tx.Bucket([]byte("v1"))
	if err := root.DeleteBucket([]byte("tree")); err != nil {
		return err
	}
	tree, err := root.CreateBucket([]byte("tree"))
	if err != nil {
		return err
	}
	th, nodes, err := recordTree(tx)
	if err != nil {
		return err
	}
	// Schema 6 keys each node by its position in creation order, which
	// is the order AppendLeaves returns them in from an empty tree.
	for i, n := range nodes {
		if err := tree.Put(binary.BigEndian.AppendUint64([]byte{0x80}, uint64(i)), n.Hash); err != nil {
			return err
		}
	}
	if err := sub(tx, "meta").Put([]byte("tree_order_from"), seqKey(0)); err != nil {
		return err
	}
	return sub(tx, "meta").Put([]byte("tree_head"), bytes.Join(th.Hashes, nil))
}

// truncate removes records after n and, like a careful attacker, moves
// the head back and rebuilds the tree so that the chain and the tree alone
// look intact.
func truncate(n uint64) tamper {
	return all(truncateOnly(n), rebuildTree)
}

// truncateOnly is truncate by an attacker who leaves the tree as it was.
func truncateOnly(n uint64) tamper {
	return func(tx *bolt.Tx) error {
		for k := n + 1; k <= nRecords; k++ {
			if err := sub(tx, "audit").Delete(seqKey(k)); err != nil {
				return err
			}
		}
		return setHead(tx, n)
	}
}

// rewrite edits record n and re-hashes the chain from there to the end,
// head included, and rebuilds the tree: the chain and the tree alone look
// intact.
func rewrite(n uint64) tamper { return all(rewriteOnly(n), rebuildTree) }

// editNode flips a bit of the stored tree node (level, index), found by
// its hash (computed from the records), whatever key the schema gives it.
func editNode(level uint, index uint64) tamper {
	return func(tx *bolt.Tx) error {
		_, nodes, err := recordTree(tx)
		if err != nil {
			return err
		}
		var want []byte
		for _, n := range nodes {
			if n.ID.Level == level && n.ID.Index == index {
				want = n.Hash
			}
		}
		var k []byte
		if err := sub(tx, "tree").ForEach(func(key, v []byte) error {
			if bytes.Equal(v, want) {
				k = bytes.Clone(key)
			}
			return nil
		}); err != nil {
			return err
		}
		if want == nil || k == nil {
			return fmt.Errorf("no tree node (level %d, index %d)", level, index)
		}
		v := bytes.Clone(sub(tx, "tree").Get(k))
		v[0] ^= 1
		return sub(tx, "tree").Put(k, v)
	}
}

// rewriteOnly is rewrite by an attacker who leaves the tree as it was.
func rewriteOnly(n uint64) tamper {
	return func(tx *bolt.Tx) error {
		prev := getRec(tx, n-1).Hash
		for k := n; k <= nRecords; k++ {
			r := getRec(tx, k)
			if k == n {
				r.Outcome = "denied"
			}
			r.PrevHash = prev
			r.Hash = store.HashAuditRecord(r)
			prev = r.Hash
			if err := putJSON(tx, "audit", k, r); err != nil {
				return err
			}
		}
		return setHead(tx, nRecords)
	}
}

func editCheckpoint(n uint64, f func(*store.Checkpoint)) tamper {
	return func(tx *bolt.Tx) error {
		var c store.Checkpoint
		if err := json.Unmarshal(sub(tx, "checkpoints").Get(seqKey(n)), &c); err != nil {
			return err
		}
		f(&c)
		return putJSON(tx, "checkpoints", n, c)
	}
}

func all(ts ...tamper) tamper {
	return func(tx *bolt.Tx) error {
		for _, t := range ts {
			if err := t(tx); err != nil {
				return err
			}
		}
		return nil
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

func TestVerify(t *testing.T) {
	key, attacker := newKey(t), newKey(t)
	golden := writeGolden(t, key)
	dir := t.TempDir()

	forged := func(tx *bolt.Tx) error {
		// A checkpoint signed with another key, over a real record.
		r := getRec(tx, 5)
		c, err := SignCheckpoint(attacker, store.Checkpoint{Seq: 5, Hash: r.Hash, Time: r.Time, KeyFingerprint: Fingerprint(&attacker.PublicKey)})
		if err != nil {
			return err
		}
		return putJSON(tx, "checkpoints", 5, c)
	}

	tests := []struct {
		name       string
		tamper     tamper
		pub        *ecdsa.PublicKey // nil: the right key
		wantSeq    uint64
		wantKind   string // "" = intact
		wantLatest uint64 // for intact logs
	}{
		{name: "intact", wantLatest: 10},
		{name: "edited", tamper: editField(5), wantSeq: 5, wantKind: store.ChainEdited},
		{name: "inserted", tamper: insert(5), wantSeq: 5, wantKind: store.ChainInserted},
		{name: "deleted", tamper: deleteRec(5), wantSeq: 5, wantKind: store.ChainDeleted},
		{name: "reordered", tamper: swap(3, 4), wantSeq: 3, wantKind: store.ChainReordered},
		{name: "tail cut, head left", tamper: all(deleteRec(9), deleteRec(10)), wantSeq: 9, wantKind: store.ChainDeleted},
		// The chain alone cannot see these two; the checkpoint at 10 does.
		{name: "truncated after a checkpoint", tamper: truncate(8), wantSeq: 9, wantKind: store.ChainDeleted},
		{name: "truncated to a checkpoint", tamper: truncate(7), wantSeq: 8, wantKind: store.ChainDeleted},
		// Rewritten and re-hashed: named at the first record after the
		// newest checkpoint that still matches.
		{name: "rewritten after the checkpoint at 7", tamper: rewrite(8), wantSeq: 8, wantKind: store.ChainEdited},
		{name: "rewritten between checkpoints 3 and 7", tamper: rewrite(5), wantSeq: 4, wantKind: store.ChainEdited},
		{name: "rewritten before every checkpoint", tamper: rewrite(2), wantSeq: 1, wantKind: store.ChainEdited},
		{name: "bad checkpoint signature", tamper: editCheckpoint(7, func(c *store.Checkpoint) { c.Signature[len(c.Signature)-1] ^= 1 }), wantSeq: 7, wantKind: store.ChainBadCheckpoint},
		{name: "checkpoint time edited", tamper: editCheckpoint(3, func(c *store.Checkpoint) { c.Time = c.Time.Add(time.Hour) }), wantSeq: 3, wantKind: store.ChainBadCheckpoint},
		{name: "checkpoint moved to another record", tamper: editCheckpoint(7, func(c *store.Checkpoint) { c.Seq = 6 }), wantSeq: 6, wantKind: store.ChainBadCheckpoint},
		// The tree: an attacker who edits records without rebuilding it
		// is caught by the tree at the first edited record, and one who
		// edits the tree by the records.
		{name: "rewritten without the tree", tamper: rewriteOnly(5), wantSeq: 5, wantKind: store.ChainTreeMismatch},
		{name: "truncated without the tree", tamper: truncateOnly(8), wantSeq: 9, wantKind: store.ChainDeleted},
		{name: "tree leaf edited", tamper: editNode(0, 6), wantSeq: 7, wantKind: store.ChainTreeMismatch},
		{name: "tree node edited", tamper: editNode(2, 1), wantSeq: 5, wantKind: store.ChainTreeMismatch},
		{name: "tree head edited", tamper: func(tx *bolt.Tx) error {
			v := bytes.Clone(sub(tx, "meta").Get([]byte("tree_head")))
			v[len(v)-1] ^= 1
			return sub(tx, "meta").Put([]byte("tree_head"), v)
		}, wantSeq: nRecords, wantKind: store.ChainTreeMismatch},
		// Two checkpoints of one size with different roots: the note at
		// 10 names another tree of 10 leaves than the log's.
		{name: "note of another tree", tamper: editCheckpoint(10, func(c *store.Checkpoint) {
			signer, _ := NewNoteSigner(goldenOrigin, goldenLogKey)
			c.Note, _ = SignCheckpointNote(signer, 10, bytes.Repeat([]byte{0xee}, 32), nil)
		}), wantSeq: 10, wantKind: store.ChainTreeRewritten},
		{name: "note of another size", tamper: editCheckpoint(7, func(c *store.Checkpoint) {
			signer, _ := NewNoteSigner(goldenOrigin, goldenLogKey)
			c.Note, _ = SignCheckpointNote(signer, 6, bytes.Repeat([]byte{0xee}, 32), nil)
		}), wantSeq: 7, wantKind: store.ChainBadCheckpoint},
		{name: "unreadable checkpoint", tamper: func(tx *bolt.Tx) error { return sub(tx, "checkpoints").Put(seqKey(7), []byte("{")) }, wantSeq: 7, wantKind: store.ChainBadCheckpoint},
		{name: "forged checkpoint", tamper: forged, wantSeq: 5, wantKind: store.ChainWrongCheckpointKey},
		{name: "wrong audit key", pub: &attacker.PublicKey, wantSeq: 3, wantKind: store.ChainWrongCheckpointKey},
		// The first bad record wins: an edit at 2 is reported before a
		// broken checkpoint at 7.
		{name: "two problems", tamper: all(editField(2), editCheckpoint(7, func(c *store.Checkpoint) { c.Signature[5] ^= 1 })), wantSeq: 2, wantKind: store.ChainEdited},
		// A documented limit: cutting the tail together with every
		// checkpoint that covers it leaves a log that verifies. Keep the
		// newest checkpoint (signctl audit verify prints it) somewhere the
		// database's writer cannot reach.
		{
			name: "truncated with its checkpoints (limit)", wantLatest: 3,
			tamper: all(truncate(5), func(tx *bolt.Tx) error {
				if err := sub(tx, "checkpoints").Delete(seqKey(7)); err != nil {
					return err
				}
				return sub(tx, "checkpoints").Delete(seqKey(10))
			}),
		},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			path := filepath.Join(dir, fmt.Sprintf("%d.db", i))
			copyFile(t, golden, path)
			if tt.tamper != nil {
				db, err := bolt.Open(path, 0o600, nil)
				if err != nil {
					t.Fatal(err)
				}
				if err := db.Update(tt.tamper); err != nil {
					t.Fatal(err)
				}
				db.Close()
			}
			s, err := boltstore.Open(context.Background(), path, boltstore.Options{ReadOnly: true})
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			pub := tt.pub
			if pub == nil {
				pub = &key.PublicKey
			}
			rep, err := Verify(context.Background(), s, pub)
			if tt.wantKind == "" {
				if err != nil {
					t.Fatalf("Verify = %v, want intact", err)
				}
				if rep.Latest == nil || rep.Latest.Seq != tt.wantLatest {
					t.Fatalf("Verify latest checkpoint = %+v, want seq %d", rep.Latest, tt.wantLatest)
				}
				return
			}
			var ce *store.ChainError
			if !errors.As(err, &ce) {
				t.Fatalf("Verify = %v, want a *store.ChainError", err)
			}
			if ce.Seq != tt.wantSeq || ce.Kind != tt.wantKind {
				t.Fatalf("Verify = seq %d %q (%v); want seq %d %q", ce.Seq, ce.Kind, err, tt.wantSeq, tt.wantKind)
			}
			if !errors.Is(err, errdefs.ErrFailedPrecondition) {
				t.Fatalf("a broken log is not ErrFailedPrecondition: %v", err)
			}
		})
	}
}

func TestVerifyReport(t *testing.T) {
	key := newKey(t)
	s, err := boltstore.Open(context.Background(), writeGolden(t, key), boltstore.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	rep, err := Verify(context.Background(), s, &key.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	seq, hash, _ := s.AuditHead(context.Background())
	if rep.HeadSeq != seq || !bytes.Equal(rep.HeadHash, hash) || rep.Checkpoints != len(checkpointAt) || rep.Latest == nil || rep.Latest.Seq != nRecords {
		t.Fatalf("report %+v", rep)
	}
	if _, err := Verify(context.Background(), s, nil); !errors.Is(err, errdefs.ErrInvalidArgument) {
		t.Fatalf("Verify without a key: %v", err)
	}
}

// TestVerifyEmptyLog: a log with no records and no checkpoints is intact.
func TestVerifyEmptyLog(t *testing.T) {
	s, err := boltstore.Open(context.Background(), filepath.Join(t.TempDir(), "db"), boltstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	rep, err := Verify(context.Background(), s, &newKey(t).PublicKey)
	if err != nil || rep.HeadSeq != 0 || rep.Latest != nil {
		t.Fatalf("Verify of an empty log = %+v, %v", rep, err)
	}
}
