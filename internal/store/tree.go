package store

import (
	"bytes"
	"context"
	"crypto"
	"errors"
	"fmt"
	"math/bits"

	"github.com/transparency-dev/merkle/compact"
	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"

	"github.com/signerd/signerd/internal/errdefs"
)

// The audit log is also an RFC 6962 / RFC 9162 Merkle tree: its records,
// in Seq order, are the leaves (leaf index = Seq − 1, leaf bytes =
// EncodeAuditRecord). The hash chain stays: it is what the ECDSA
// checkpoints signed before the tree existed vouch for, and it lets
// VerifyAudit classify damage record by record; the tree adds what the
// chain cannot give a third party: short proofs that a record is in the
// log (inclusion) and that the log only grew (consistency).
//
// A backend keeps two things beside the records, both written in the
// transaction that appends the leaves:
//
//   - the compact range of the whole tree (TreeHead: the roots of the
//     perfect subtrees covering leaves [0, size), at most 64 hashes), next
//     to the audit head, so an append needs no other read;
//   - every perfect subtree's root (a "node", level and index as in
//     compact.NodeID) once it is complete, so that any root, inclusion or
//     consistency proof for any size up to the head is O(log n) node reads.
//
// An append of k leaves writes k leaf nodes and at most k + log2(size)
// interior ones (amortised, fewer than 2k), never rereading the log.

// LogReader answers the transparency log's questions from what the store
// keeps; none of them rereads the whole log.
type LogReader interface {
	// LogSize is the number of leaves (the audit head's Seq).
	LogSize(ctx context.Context) (uint64, error)
	// LogRoot is the RFC 9162 root hash of the first size leaves (0 < size ≤ LogSize).
	LogRoot(ctx context.Context, size uint64) ([]byte, error)
	// InclusionProof is the audit path of leaf index in the tree of size leaves, leaf to root.
	InclusionProof(ctx context.Context, index, size uint64) ([][]byte, error)
	// ConsistencyProof proves the tree of size2 extends the tree of size1 (0 < size1 ≤ size2 ≤ LogSize).
	ConsistencyProof(ctx context.Context, size1, size2 uint64) ([][]byte, error)
	// SignatureLeaf is the leaf index of the record of the signature sig over digest (errdefs.ErrNotFound when none).
	SignatureLeaf(ctx context.Context, digest, sig []byte) (uint64, error)
}

// LogHasher is the log's tree hasher: RFC 6962 with SHA-256 (leaf =
// SHA-256(0x00 ‖ leaf bytes), node = SHA-256(0x01 ‖ left ‖ right)).
var LogHasher = rfc6962.New(crypto.SHA256)

var rangeFactory = &compact.RangeFactory{Hash: LogHasher.HashChildren}

// LeafHash is the Merkle leaf hash of record r.
func LeafHash(r AuditRecord) []byte { return LogHasher.HashLeaf(EncodeAuditRecord(r)) }

// NodeID names a perfect subtree: Level 0 is a leaf, Index counts from
// the left at that level.
type NodeID = compact.NodeID

// TreeNode is a node and its hash, as a backend stores it.
type TreeNode struct {
	ID   NodeID
	Hash []byte
}

// TreeHead is the compact range of the whole tree: Hashes are the roots of
// the perfect subtrees covering leaves [0, Size), left to right (one per
// set bit of Size).
type TreeHead struct {
	Size   uint64
	Hashes [][]byte
}

// CheckTreeHead reports a head whose hash count or hash sizes do not match
// its size: a damaged or hand-edited database.
func CheckTreeHead(h TreeHead) error {
	if want := bits.OnesCount64(h.Size); len(h.Hashes) != want {
		return fmt.Errorf("tree head of size %d holds %d hashes, want %d: %w", h.Size, len(h.Hashes), want, errdefs.ErrInternal)
	}
	for _, x := range h.Hashes {
		if len(x) != AuditHashSize {
			return fmt.Errorf("tree head holds a %d-byte hash: %w", len(x), errdefs.ErrInternal)
		}
	}
	return nil
}

// AppendLeaves appends the leaf hashes to the tree h and returns the new
// head and every node completed on the way (leaves included), in the order
// they were completed.
func AppendLeaves(h TreeHead, leaves [][]byte) (TreeHead, []TreeNode, error) {
	if err := CheckTreeHead(h); err != nil {
		return h, nil, err
	}
	r, err := rangeFactory.NewRange(0, h.Size, cloneHashes(h.Hashes))
	if err != nil {
		return h, nil, fmt.Errorf("tree head: %w", joinInternal(err))
	}
	nodes := make([]TreeNode, 0, 2*len(leaves)+bits.Len64(h.Size))
	visit := func(id compact.NodeID, hash []byte) {
		nodes = append(nodes, TreeNode{ID: id, Hash: bytes.Clone(hash)})
	}
	for _, l := range leaves {
		if err := r.Append(l, visit); err != nil {
			return h, nil, fmt.Errorf("append leaf %d: %w", r.End(), joinInternal(err))
		}
	}
	return TreeHead{Size: r.End(), Hashes: r.Hashes()}, nodes, nil
}

// TreeNodeReader returns the hashes of the given complete nodes, in order;
// a node the backend does not have is an ErrInternal (a damaged store).
type TreeNodeReader func(ctx context.Context, ids []NodeID) ([][]byte, error)

// TreeRoot is the RFC 9162 root of the first size leaves.
func TreeRoot(ctx context.Context, read TreeNodeReader, size, logSize uint64) ([]byte, error) {
	if size == 0 || size > logSize {
		return nil, Invalid("tree size %d is outside 1..%d (the log's size)", size, logSize)
	}
	ids := compact.RangeNodes(0, size, nil)
	hashes, err := readNodes(ctx, read, ids)
	if err != nil {
		return nil, err
	}
	r, err := rangeFactory.NewRange(0, size, hashes)
	if err != nil {
		return nil, joinInternal(err)
	}
	return r.GetRootHash(nil)
}

// TreeInclusion is the inclusion proof of leaf index in the tree of size
// leaves, leaf to root.
func TreeInclusion(ctx context.Context, read TreeNodeReader, index, size, logSize uint64) ([][]byte, error) {
	if size == 0 || size > logSize {
		return nil, Invalid("tree size %d is outside 1..%d (the log's size)", size, logSize)
	}
	if index >= size {
		return nil, Invalid("leaf index %d is not in a tree of %d leaves", index, size)
	}
	p, err := proof.Inclusion(index, size)
	if err != nil {
		return nil, Invalid("inclusion proof: %v", err)
	}
	return rehashProof(ctx, read, p)
}

// TreeConsistency proves that the tree of size2 leaves extends the tree of
// size1 leaves.
func TreeConsistency(ctx context.Context, read TreeNodeReader, size1, size2, logSize uint64) ([][]byte, error) {
	if size2 == 0 || size2 > logSize {
		return nil, Invalid("tree size %d is outside 1..%d (the log's size)", size2, logSize)
	}
	if size1 == 0 || size1 > size2 {
		return nil, Invalid("tree size %d is outside 1..%d (the larger size)", size1, size2)
	}
	p, err := proof.Consistency(size1, size2)
	if err != nil {
		return nil, Invalid("consistency proof: %v", err)
	}
	return rehashProof(ctx, read, p)
}

func rehashProof(ctx context.Context, read TreeNodeReader, p proof.Nodes) ([][]byte, error) {
	hashes, err := readNodes(ctx, read, p.IDs)
	if err != nil {
		return nil, err
	}
	out, err := p.Rehash(hashes, LogHasher.HashChildren)
	if err != nil {
		return nil, joinInternal(err)
	}
	return out, nil
}

func readNodes(ctx context.Context, read TreeNodeReader, ids []NodeID) ([][]byte, error) {
	if len(ids) == 0 {
		return [][]byte{}, nil
	}
	hashes, err := read(ctx, ids)
	if err != nil {
		return nil, err
	}
	if len(hashes) != len(ids) {
		return nil, fmt.Errorf("read %d tree nodes, got %d: %w", len(ids), len(hashes), errdefs.ErrInternal)
	}
	for i, h := range hashes {
		if len(h) != AuditHashSize {
			return nil, fmt.Errorf("tree node (level %d, index %d) is %d bytes: %w", ids[i].Level, ids[i].Index, len(h), errdefs.ErrInternal)
		}
	}
	return hashes, nil
}

// NodeCompletedBy is the seq of the record whose append completed node id
// (its last leaf): backends that group nodes by the batch that wrote them
// find a node with it.
func NodeCompletedBy(id NodeID) uint64 {
	_, end := id.Coverage()
	return end
}

// SignatureRecordMatches reports whether r is the record of signature sig
// over digest: the record, not only the signature store, must carry both,
// since the record is the leaf a proof is about.
func SignatureRecordMatches(r AuditRecord, digest, sig []byte) bool {
	return len(sig) > 0 && bytes.Equal(r.Signature, sig) && r.Digest == fmt.Sprintf("%x", digest)
}

func cloneHashes(hs [][]byte) [][]byte {
	out := make([][]byte, len(hs))
	for i, h := range hs {
		out[i] = bytes.Clone(h)
	}
	return out
}

func joinInternal(err error) error { return fmt.Errorf("%w: %w", errdefs.ErrInternal, err) }

// TreeVerifier rebuilds the tree of the records a verifier walks, in
// order, and compares every node and the final compact range with what
// the backend stored: a verify that reads the log once also proves the
// tree it serves proofs from.
type TreeVerifier struct {
	head TreeHead
}

// Add appends recs (the records after the ones added so far) and checks
// each node they complete against read. A node read cannot supply or that
// differs is a *ChainError of kind ChainTreeMismatch.
func (v *TreeVerifier) Add(ctx context.Context, recs []AuditRecord, read TreeNodeReader) error {
	if len(recs) == 0 {
		return nil
	}
	leaves := make([][]byte, len(recs))
	for i, r := range recs {
		leaves[i] = LeafHash(r)
	}
	head, nodes, err := AppendLeaves(v.head, leaves)
	if err != nil {
		return err
	}
	ids := make([]NodeID, len(nodes))
	for i, n := range nodes {
		ids[i] = n.ID
	}
	stored, err := read(ctx, ids)
	if err != nil {
		if errors.Is(err, errdefs.ErrInternal) {
			// Name the first record whose node is missing, not the
			// first of the batch: read each node alone (the failure
			// path only).
			seq := recs[0].Seq
			for _, n := range nodes {
				if _, nerr := read(ctx, []NodeID{n.ID}); nerr != nil {
					if !errors.Is(nerr, errdefs.ErrInternal) {
						return nerr
					}
					begin, _ := n.ID.Coverage()
					seq = begin + 1
					break
				}
			}
			return &ChainError{Seq: seq, Kind: ChainTreeMismatch,
				Message: fmt.Sprintf("the stored tree is incomplete for records %d to %d, from record %d: %v", recs[0].Seq, recs[len(recs)-1].Seq, seq, err)}
		}
		return err
	}
	for i, n := range nodes {
		if i >= len(stored) || !bytes.Equal(stored[i], n.Hash) {
			begin, end := n.ID.Coverage()
			return &ChainError{Seq: begin + 1, Kind: ChainTreeMismatch,
				Message: fmt.Sprintf("the stored tree node over records %d to %d is not the hash of those records (a node was edited, or records were rewritten without it)", begin+1, end)}
		}
	}
	v.head = head
	return nil
}

// Size is the number of leaves added.
func (v *TreeVerifier) Size() uint64 { return v.head.Size }

// Check compares the rebuilt compact range with the one stored beside the
// head (the next append builds on it).
func (v *TreeVerifier) Check(stored TreeHead) error {
	if stored.Size != v.head.Size || len(stored.Hashes) != len(v.head.Hashes) {
		return &ChainError{Seq: v.head.Size, Kind: ChainTreeMismatch,
			Message: fmt.Sprintf("the stored tree head is of %d leaves with %d hashes; the records make %d with %d", stored.Size, len(stored.Hashes), v.head.Size, len(v.head.Hashes))}
	}
	for i := range stored.Hashes {
		if !bytes.Equal(stored.Hashes[i], v.head.Hashes[i]) {
			return &ChainError{Seq: v.head.Size, Kind: ChainTreeMismatch,
				Message: "the stored tree head is not the tree of the records (the next append would build on a wrong tree)"}
		}
	}
	return nil
}

// Matches reports whether stored is the rebuilt compact range (Check
// without the error).
func (v *TreeVerifier) Matches(stored TreeHead) bool { return v.Check(stored) == nil }
