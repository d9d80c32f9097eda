package etcdstore

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"sync/atomic"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/signerd/signerd/internal/errdefs"
	"github.com/signerd/signerd/internal/store"
)

// The transparency log's tree on etcd (store/tree.go). Replicas share one
// tree as they share one chain: the compact range of the whole tree rides
// in audit/head, the key every append compare-and-swaps, so a batch's
// leaves join the tree in the transaction that appends them, or not at
// all. The nodes a batch completes (its leaves and the interior nodes they
// finish, fewer than 2 per leaf) go into ONE key, audit/tree/LASTSEQ, named
// for the batch's last record: a transaction of maxBatch signatures then
// holds 2*maxBatch+2 puts, within etcd's 128 operations.
//
// A node is completed by the append of its last leaf, so it lives in the
// first tree key whose LASTSEQ is at least that leaf's seq
// (store.NodeCompletedBy): one range read with limit 1 finds it, and all
// the nodes of a proof are read in one transaction of such reads.

// treeNodeSize is the encoding of one node in a tree key: uint8(level) ‖
// uint64be(index) ‖ hash(32).
const treeNodeSize = 1 + 8 + store.AuditHashSize

// maxTreeReads bounds the reads in one transaction (etcd's 128 operations).
const maxTreeReads = 100

func encodeNodes(nodes []store.TreeNode) string {
	b := make([]byte, 0, len(nodes)*treeNodeSize)
	for _, n := range nodes {
		b = append(b, byte(n.ID.Level))
		b = binary.BigEndian.AppendUint64(b, n.ID.Index)
		b = append(b, n.Hash...)
	}
	return string(b)
}

// findNode returns id's hash from the value of a tree key.
func findNode(raw []byte, id store.NodeID) ([]byte, bool) {
	for ; len(raw) >= treeNodeSize; raw = raw[treeNodeSize:] {
		if uint(raw[0]) == id.Level && binary.BigEndian.Uint64(raw[1:9]) == id.Index {
			return bytes.Clone(raw[9:treeNodeSize]), true
		}
	}
	return nil, false
}

// treeCounter counts tree keys read and written (TreeOps).
type treeCounter struct{ reads, writes atomic.Uint64 }

// TreeOps returns how many tree keys (node groups) this store has read and
// written: the etcd operations the tree costs (the compact range rides in
// the head, which every append writes anyway).
func (s *Store) TreeOps() (reads, writes uint64) {
	return s.treeOps.reads.Load(), s.treeOps.writes.Load()
}

// treeHead is the tree as a head value records it.
func (h headValue) treeHead() (store.TreeHead, error) {
	th := store.TreeHead{Size: h.Seq, Hashes: h.Tree}
	if err := store.CheckTreeHead(th); err != nil {
		return th, fmt.Errorf("audit head at seq %d has no valid tree (was it written by a signerd without the transparency log? upgrade every replica): %w", h.Seq, err)
	}
	return th, nil
}

// readNodes reads complete nodes at revision rev (0: the latest), all in
// one transaction per maxTreeReads.
func (s *Store) readNodes(rev int64) store.TreeNodeReader {
	return func(ctx context.Context, ids []store.NodeID) ([][]byte, error) {
		out := make([][]byte, 0, len(ids))
		for start := 0; start < len(ids); start += maxTreeReads {
			chunk := ids[start:min(len(ids), start+maxTreeReads)]
			ops := make([]clientv3.Op, len(chunk))
			for i, id := range chunk {
				opts := []clientv3.OpOption{clientv3.WithRange(rangeEnd(s.l.treeDir())), clientv3.WithLimit(1)}
				if rev > 0 {
					opts = append(opts, clientv3.WithRev(rev))
				}
				ops[i] = clientv3.OpGet(s.l.tree(store.NodeCompletedBy(id)), opts...)
			}
			resp, err := s.cli.Txn(ctx).Then(ops...).Commit()
			if err != nil {
				return nil, mapErr("read tree", err)
			}
			s.treeOps.reads.Add(uint64(len(chunk)))
			for i, r := range resp.Responses {
				kvs := r.GetResponseRange().GetKvs()
				var h []byte
				ok := len(kvs) == 1
				if ok {
					h, ok = findNode(kvs[0].Value, chunk[i])
				}
				if !ok {
					return nil, fmt.Errorf("tree node (level %d, index %d) is missing (run audit verify): %w", chunk[i].Level, chunk[i].Index, errdefs.ErrInternal)
				}
				out = append(out, h)
			}
		}
		return out, nil
	}
}

// logHead reads the head: the log's size and the revision to read nodes
// at, so a proof is of one tree even while replicas append.
func (s *Store) logHead(ctx context.Context) (uint64, int64, error) {
	if err := ctx.Err(); err != nil {
		return 0, 0, err
	}
	resp, err := s.cli.Get(ctx, s.l.head())
	if err != nil {
		return 0, 0, mapErr("read audit head", err)
	}
	if len(resp.Kvs) == 0 {
		return 0, resp.Header.Revision, nil
	}
	h, err := decodeHead(resp.Kvs[0].Value)
	if err != nil {
		return 0, 0, err
	}
	return h.Seq, resp.Header.Revision, nil
}

// LogSize is the number of leaves: the audit head's seq.
func (s *Store) LogSize(ctx context.Context) (uint64, error) {
	n, _, err := s.logHead(ctx)
	return n, err
}

// LogRoot is the root of the first size leaves.
func (s *Store) LogRoot(ctx context.Context, size uint64) ([]byte, error) {
	n, rev, err := s.logHead(ctx)
	if err != nil {
		return nil, err
	}
	return store.TreeRoot(ctx, s.readNodes(rev), size, n)
}

// InclusionProof is the audit path of leaf index in the tree of size leaves.
func (s *Store) InclusionProof(ctx context.Context, index, size uint64) ([][]byte, error) {
	n, rev, err := s.logHead(ctx)
	if err != nil {
		return nil, err
	}
	return store.TreeInclusion(ctx, s.readNodes(rev), index, size, n)
}

// ConsistencyProof proves the tree of size2 leaves extends that of size1.
func (s *Store) ConsistencyProof(ctx context.Context, size1, size2 uint64) ([][]byte, error) {
	n, rev, err := s.logHead(ctx)
	if err != nil {
		return nil, err
	}
	return store.TreeConsistency(ctx, s.readNodes(rev), size1, size2, n)
}

// SignatureLeaf is the leaf index of the record of signature sig over
// digest: the latest, when the same signature was recorded more than once
// (as boltstore). A signature key's SEQ is its audit record's seq (PutSignature);
// the record itself is checked, since it is what a proof is about (an
// imported signature's SEQ is not its record's, and a record written before
// records carried signatures proves nothing about one).
func (s *Store) SignatureLeaf(ctx context.Context, digest, sig []byte) (uint64, error) {
	if err := store.CheckDigest(digest); err != nil {
		return 0, err
	}
	if len(sig) == 0 {
		return 0, store.Invalid("signature is empty")
	}
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	resp, err := s.cli.Get(ctx, s.l.signatures(digest), clientv3.WithPrefix())
	if err != nil {
		return 0, mapErr("read", err)
	}
	// Fixed-width hex SEQs: key order is record order, latest last.
	for i := len(resp.Kvs) - 1; i >= 0; i-- {
		kv := resp.Kvs[i]
		rec, err := decode[store.SignatureRecord](kv)
		if err != nil {
			return 0, err
		}
		seq, ok := parseSeq(string(kv.Key), s.l.signatures(digest))
		if !ok || !bytes.Equal(rec.Signature, sig) {
			continue
		}
		rkv, err := s.get(ctx, s.l.record(seq))
		if err != nil {
			return 0, err
		}
		if rkv == nil {
			continue
		}
		r, err := decode[store.AuditRecord](rkv)
		if err != nil {
			return 0, err
		}
		if r.Seq == seq && store.SignatureRecordMatches(r, digest, sig) {
			return seq - 1, nil
		}
	}
	return 0, fmt.Errorf("no audit record of this signature over %x: %w", digest, errdefs.ErrNotFound)
}

// appendTree appends the leaves of recs to the tree of the head the
// committer holds and returns the new compact range and the put of the
// nodes they complete (one key; see above).
func (s *Store) appendTree(recs []store.AuditRecord) ([][]byte, clientv3.Op, error) {
	th, err := headValue{Seq: s.head.seq, Hash: s.head.hash, Tree: s.head.tree}.treeHead()
	if err != nil {
		return nil, clientv3.Op{}, err
	}
	leaves := make([][]byte, len(recs))
	for i, r := range recs {
		leaves[i] = store.LeafHash(r)
	}
	th, nodes, err := store.AppendLeaves(th, leaves)
	if err != nil {
		return nil, clientv3.Op{}, err
	}
	s.treeOps.writes.Add(1)
	return th.Hashes, clientv3.OpPut(s.l.tree(recs[len(recs)-1].Seq), encodeNodes(nodes)), nil
}
