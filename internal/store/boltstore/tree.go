package boltstore

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/bits"
	"sync"
	"sync/atomic"

	bolt "go.etcd.io/bbolt"

	"github.com/signerd/signerd/internal/errdefs"
	"github.com/signerd/signerd/internal/store"
)

// treeCounter counts the tree's database operations (nodes and tree head
// read and written), so a test can show an append costs O(log n) of them.
type treeCounter struct{ reads, writes atomic.Uint64 }

// counters maps each open *bolt.DB to its Store's counter: appendAudit and
// the migrations run on a bare *bolt.Tx, which knows its DB.
var counters sync.Map

// countOf returns tx's counter; a database no Store opened (a test editing
// a file) counts into a throwaway.
func countOf(tx *bolt.Tx) *treeCounter {
	if c, ok := counters.Load(tx.DB()); ok {
		return c.(*treeCounter)
	}
	return new(treeCounter)
}

// TreeOps returns how many tree nodes and tree heads this store has read
// and written (for tests: appends and proofs stay O(log n)).
func (s *Store) TreeOps() (reads, writes uint64) {
	c, ok := counters.Load(s.db)
	if !ok {
		return 0, 0
	}
	return c.(*treeCounter).reads.Load(), c.(*treeCounter).writes.Load()
}

// nodeLayout is where tree/ keeps each node. Up to schema 5 a node was
// keyed level ‖ uint64be(index), so the nodes one commit completes (8
// leaves: 8 at level 0, 4 at level 1, 2, 1, …) went to the tails of four
// or more key ranges, each its own B+tree leaf page: a quarter of the
// pages a commit wrote (BenchmarkPutSignatureFilled, 8 callers: 21 → 16
// pages per commit without them). From schema 6 a node is keyed by its
// position in creation order (postOrder), behind a prefix that sorts after
// every level byte, so each commit's nodes are one run appended at the end
// of the bucket. Nodes written before the migration stay where they are:
// those complete within the first from leaves are read under their old key.
type nodeLayout struct{ from uint64 }

// allByLevel is the layout of a file without keyTreeOrderFrom (schemas
// 3–5, and migration 3 building the tree of an older file).
var allByLevel = nodeLayout{from: math.MaxUint64}

// orderedNodePrefix starts the key of a node in creation order; level
// bytes are below 64.
const orderedNodePrefix = 0x80

// readNodeLayout reads the layout from the meta bucket.
func readNodeLayout(meta *bolt.Bucket) (nodeLayout, error) {
	v := meta.Get(keyTreeOrderFrom)
	switch {
	case v == nil:
		return allByLevel, nil
	case len(v) != 8:
		return nodeLayout{}, fmt.Errorf("tree order watermark is %d bytes, want 8 (run audit verify): %w", len(v), errdefs.ErrInternal)
	}
	return nodeLayout{from: binary.BigEndian.Uint64(v)}, nil
}

// noNodeKey is the key of a node no tree can hold: nothing is stored
// under it, so reading it finds the node missing.
var noNodeKey = []byte{0xff}

// key is the key of node id.
func (l nodeLayout) key(id store.NodeID) []byte {
	n, ok := completedAt(id)
	switch {
	case !ok:
		return noNodeKey
	case n <= l.from:
		return binary.BigEndian.AppendUint64([]byte{byte(id.Level)}, id.Index)
	}
	return binary.BigEndian.AppendUint64([]byte{orderedNodePrefix}, postOrder(id.Level, n))
}

// completedAt is the number of leaves with which node id is complete,
// (index+1)·2^level; false beyond 2^62 leaves (no real tree; postOrder's
// 2n must not wrap).
func completedAt(id store.NodeID) (uint64, bool) {
	const maxLeaves = uint64(1) << 62
	if id.Level >= 64 || id.Index >= maxLeaves>>id.Level {
		return 0, false
	}
	return (id.Index + 1) << id.Level, true
}

// postOrder is the position, among all nodes in the order an append-only
// tree completes them, of the node at level that the n'th leaf completes.
// After n leaves the tree has 2n − popcount(n) complete nodes; the n'th
// leaf completes the nodes at levels 0 … trailingZeros(n), in that order,
// the last of them being the last of those 2n − popcount(n).
func postOrder(level uint, n uint64) uint64 {
	top := uint64(bits.TrailingZeros64(n))
	return 2*n - uint64(bits.OnesCount64(n)) - 1 - (top - uint64(level))
}

// readTreeHead returns the compact range of the first size leaves as
// recorded under meta/tree_head.
func readTreeHead(meta *bolt.Bucket, size uint64) (store.TreeHead, error) {
	countOf(meta.Tx()).reads.Add(1)
	raw := meta.Get(keyTreeHead)
	if len(raw)%store.AuditHashSize != 0 {
		return store.TreeHead{}, fmt.Errorf("tree head is %d bytes, not a whole number of hashes: %w", len(raw), errdefs.ErrInternal)
	}
	h := store.TreeHead{Size: size}
	for len(raw) > 0 {
		h.Hashes = append(h.Hashes, bytes.Clone(raw[:store.AuditHashSize]))
		raw = raw[store.AuditHashSize:]
	}
	return h, store.CheckTreeHead(h)
}

// appendLeaves adds leaves (hashes) to the tree recorded in tx, whose size
// is size before the append: writes every completed node and the new head.
func appendLeaves(tx *bolt.Tx, size uint64, leaves [][]byte) error {
	meta, err := bucket(tx, bucketKeyMeta)
	if err != nil {
		return err
	}
	tree, err := bucket(tx, bucketKeyTree)
	if err != nil {
		return err
	}
	// New nodes are appended after the last one (nodeLayout).
	tree.FillPercent = appendFill
	layout, err := readNodeLayout(meta)
	if err != nil {
		return err
	}
	h, err := readTreeHead(meta, size)
	if err != nil {
		return err
	}
	h, nodes, err := store.AppendLeaves(h, leaves)
	if err != nil {
		return err
	}
	for _, n := range nodes {
		if err := tree.Put(layout.key(n.ID), n.Hash); err != nil {
			return err
		}
	}
	countOf(tx).writes.Add(uint64(len(nodes)) + 1)
	return meta.Put(keyTreeHead, bytes.Join(h.Hashes, nil))
}

// sigLeafKey is the key of a schema-3 signature index entry (sigleaves/).
func sigLeafKey(digest, sig []byte) []byte {
	sum := sha256.Sum256(sig)
	return append(bytes.Clone(digest), sum[:]...)
}

// nodeReader reads complete nodes from tx.
func nodeReader(tx *bolt.Tx) store.TreeNodeReader {
	return func(_ context.Context, ids []store.NodeID) ([][]byte, error) {
		tree, err := bucket(tx, bucketKeyTree)
		if err != nil {
			return nil, err
		}
		meta, err := bucket(tx, bucketKeyMeta)
		if err != nil {
			return nil, err
		}
		layout, err := readNodeLayout(meta)
		if err != nil {
			return nil, err
		}
		out := make([][]byte, len(ids))
		for i, id := range ids {
			v := tree.Get(layout.key(id))
			if v == nil {
				return nil, fmt.Errorf("tree node (level %d, index %d) is missing (run audit verify): %w", id.Level, id.Index, errdefs.ErrInternal)
			}
			out[i] = bytes.Clone(v)
		}
		countOf(tx).reads.Add(uint64(len(ids)))
		return out, nil
	}
}

// logView runs fn in a read transaction with the log's size.
func (s *Store) logView(ctx context.Context, fn func(tx *bolt.Tx, size uint64) error) error {
	return s.viewLog(ctx, func(tx *bolt.Tx) error {
		meta, err := bucket(tx, bucketKeyMeta)
		if err != nil {
			return err
		}
		size, _, err := readHead(meta)
		if err != nil {
			return err
		}
		return fn(tx, size)
	})
}

// LogSize is the number of leaves: the audit head's seq.
func (s *Store) LogSize(ctx context.Context) (uint64, error) {
	var n uint64
	err := s.logView(ctx, func(_ *bolt.Tx, size uint64) error { n = size; return nil })
	return n, err
}

// LogRoot is the root of the first size leaves.
func (s *Store) LogRoot(ctx context.Context, size uint64) ([]byte, error) {
	var root []byte
	err := s.logView(ctx, func(tx *bolt.Tx, logSize uint64) (err error) {
		root, err = store.TreeRoot(ctx, nodeReader(tx), size, logSize)
		return err
	})
	return root, err
}

// InclusionProof is the audit path of leaf index in the tree of size leaves.
func (s *Store) InclusionProof(ctx context.Context, index, size uint64) ([][]byte, error) {
	var p [][]byte
	err := s.logView(ctx, func(tx *bolt.Tx, logSize uint64) (err error) {
		p, err = store.TreeInclusion(ctx, nodeReader(tx), index, size, logSize)
		return err
	})
	return p, err
}

// ConsistencyProof proves the tree of size2 leaves extends that of size1.
func (s *Store) ConsistencyProof(ctx context.Context, size1, size2 uint64) ([][]byte, error) {
	var p [][]byte
	err := s.logView(ctx, func(tx *bolt.Tx, logSize uint64) (err error) {
		p, err = store.TreeConsistency(ctx, nodeReader(tx), size1, size2, logSize)
		return err
	})
	return p, err
}

// SignatureLeaf is the leaf index of the record of signature sig over
// digest: the latest, when the same signature was recorded more than once
// (Ed25519 signs an unchanged artifact to the same bytes). The signature
// records of digest name their audit records (signatureKey); those logged
// under schema 3 are found in the frozen sigleaves/ index. Either way the
// audit record itself is checked, since it is what a proof is about.
func (s *Store) SignatureLeaf(ctx context.Context, digest, sig []byte) (uint64, error) {
	if err := store.CheckDigest(digest); err != nil {
		return 0, err
	}
	if len(sig) == 0 {
		return 0, store.Invalid("signature is empty")
	}
	var leaf uint64
	if err := s.Sync(ctx); err != nil {
		return 0, err
	}
	pending := s.idx.keys(digest) // before the transaction, as signatureRecords needs
	err := s.view(ctx, func(tx *bolt.Tx) error {
		seq, ok, err := loggedSignature(tx, digest, sig, pending)
		if err != nil {
			return err
		}
		if !ok {
			if seq, ok, err = schema3SignatureLeaf(tx, digest, sig); err != nil {
				return err
			}
		}
		if !ok {
			return fmt.Errorf("no audit record of this signature over %x: %w", digest, errdefs.ErrNotFound)
		}
		audit, err := bucket(tx, bucketKeyAudit)
		if err != nil {
			return err
		}
		rec, ok, err := getAuditRecord(audit, seq)
		if err != nil {
			return err
		}
		if !ok || rec.Seq != seq || !store.SignatureRecordMatches(rec, digest, sig) {
			return fmt.Errorf("the signature record names audit record %d, which is not this signature's record (run audit verify): %w", seq, errdefs.ErrInternal)
		}
		leaf = seq - 1
		return nil
	})
	return leaf, err
}

// loggedSignature returns the audit seq of the latest signature record of
// sig over digest keyed by its audit record (schema 4 on). It collects the
// digest's keys, then reads records newest first and stops at the first
// match, decoding only records whose bytes hold the signature's encoding:
// an artifact signed again and again costs one record read, not one per
// signature. pending are the digest's keys in the in-memory index
// (pendingIndex.keys).
func loggedSignature(tx *bolt.Tx, digest, sig []byte, pending [][]byte) (uint64, bool, error) {
	type found struct{ k, legacy []byte }
	var keys []found
	err := signatureKeys(tx, digest, nil, pending, func(k, legacy []byte) (bool, error) {
		if _, logged := loggedSeq(k); logged {
			keys = append(keys, found{bytes.Clone(k), legacy})
		}
		return true, nil
	})
	if err != nil {
		return 0, false, err
	}
	encoded := []byte(`"signature":"` + base64.StdEncoding.EncodeToString(sig) + `"`)
	records := recordsBucket(tx)
	for i := len(keys) - 1; i >= 0; i-- {
		seq, _ := loggedSeq(keys[i].k)
		v, err := signatureRecord(records, keys[i].k, keys[i].legacy)
		if err != nil {
			return 0, false, err
		}
		if !bytes.Contains(v, encoded) {
			continue
		}
		var rec struct {
			Signature []byte `json:"signature"`
		}
		if err := json.Unmarshal(v, &rec); err != nil {
			return 0, false, fmt.Errorf("decode signature record %d: %w", seq, errors.Join(errdefs.ErrInternal, err))
		}
		if bytes.Equal(rec.Signature, sig) {
			return seq, true, nil
		}
	}
	return 0, false, nil
}

// schema3SignatureLeaf looks sig over digest up in the sigleaves/ index
// that schema 3 wrote beside each signature.
func schema3SignatureLeaf(tx *bolt.Tx, digest, sig []byte) (uint64, bool, error) {
	idx, err := bucket(tx, bucketKeySigLeaves)
	if err != nil {
		return 0, false, err
	}
	raw := idx.Get(sigLeafKey(digest, sig))
	if raw == nil {
		return 0, false, nil
	}
	if len(raw) != 8 {
		return 0, false, fmt.Errorf("signature index entry is %d bytes: %w", len(raw), errdefs.ErrInternal)
	}
	return binary.BigEndian.Uint64(raw), true, nil
}
