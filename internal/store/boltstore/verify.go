package boltstore

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"

	bolt "go.etcd.io/bbolt"

	"github.com/signerd/signerd/internal/store"
)

// verifyChunk is how many audit records VerifyAudit reads per read
// transaction. Short transactions matter: a long-lived reader keeps bbolt
// from remapping a growing file, which would stall signing while a large log
// is verified.
const verifyChunk = 1024

// VerifyAudit walks the whole audit log with store.VerifyAuditChain and
// checks that the recorded head is its last record. It returns nil or a
// *store.ChainError naming the first bad record: a missing tail (the head is
// past the last record) is "deleted", a record past the head "inserted", a
// last record that differs from the head "edited". Appends may continue
// meanwhile; the log's end and the head are read in one transaction.
func (s *Store) VerifyAudit(ctx context.Context) error {
	var (
		lastSeq  uint64
		lastHash = store.GenesisHash()
		after    []byte // the bbolt key of the last record verified
		tree     store.TreeVerifier
		treeErr  error // the tree's first problem, named after the chain's
	)
	for {
		c, err := s.readAuditChunk(ctx, after, lastSeq, verifyChunk)
		if err != nil {
			return err
		}
		if err := store.VerifyAuditChain(c.records, lastHash, lastSeq); err != nil {
			if c.done {
				return err
			}
			// The classification can look ahead (is the missing seq
			// further on?), so give it everything that follows before
			// naming the damage. Only the failure path reads that much.
			all, rerr := s.readAuditChunk(ctx, after, lastSeq, 0)
			if rerr != nil {
				return rerr
			}
			if err := store.VerifyAuditChain(all.records, lastHash, lastSeq); err != nil {
				return err
			}
			return fmt.Errorf("audit log changed during verification; run it again: %w", err)
		}
		// The chain is sound; each record must also sit under its own seq,
		// or the next append would land on an existing key.
		for i, r := range c.records {
			if k := binary.BigEndian.Uint64(c.keys[i]); k != r.Seq {
				return &store.ChainError{Seq: r.Seq, Kind: store.ChainEdited,
					Message: fmt.Sprintf("record %d is stored under key %d", r.Seq, k)}
			}
		}
		if c.bad != nil {
			return c.bad
		}
		// The chain holds; the stored tree must be the tree of these
		// records, or the proofs it serves would lie. Its problem is
		// reported only if the chain and head have none: records past
		// the head, say, are no leaves.
		if treeErr == nil {
			treeErr = s.verifyTreeChunk(ctx, &tree, c.records)
		}
		if n := len(c.records); n > 0 {
			lastSeq, lastHash, after = c.records[n-1].Seq, c.records[n-1].Hash, c.keys[n-1]
		}
		if !c.done {
			continue
		}
		switch {
		case c.headSeq > lastSeq:
			return &store.ChainError{Seq: lastSeq + 1, Kind: store.ChainDeleted,
				Message: fmt.Sprintf("the log ends at %d but its head records %d: the tail was removed", lastSeq, c.headSeq)}
		case c.headSeq < lastSeq:
			return &store.ChainError{Seq: c.headSeq + 1, Kind: store.ChainInserted,
				Message: fmt.Sprintf("records follow the recorded head %d", c.headSeq)}
		case !bytes.Equal(c.headHash, lastHash):
			return &store.ChainError{Seq: lastSeq, Kind: store.ChainEdited,
				Message: "the last record's hash differs from the recorded head"}
		case treeErr != nil:
			return treeErr
		case c.treePastHead:
			return &store.ChainError{Seq: lastSeq + 1, Kind: store.ChainDeleted,
				Message: fmt.Sprintf("the tree holds leaves past the head %d: records were removed and the head moved back", lastSeq)}
		case c.treeErr != nil:
			return &store.ChainError{Seq: lastSeq, Kind: store.ChainTreeMismatch, Message: c.treeErr.Error()}
		}
		return tree.Check(c.treeHead)
	}
}

// auditChunk is a run of consecutive audit bucket entries.
type auditChunk struct {
	keys    [][]byte
	records []store.AuditRecord
	// bad reports an entry that could not be read as a record; records
	// stops before it.
	bad *store.ChainError
	// done: the chunk reaches the end of the bucket; headSeq and headHash
	// were read in the same transaction.
	done     bool
	headSeq  uint64
	headHash []byte
	// treeHead is the stored tree head, read with the head (treeErr: it
	// is unreadable).
	treeHead store.TreeHead
	treeErr  error
	// treePastHead: the tree has a leaf after the head's seq.
	treePastHead bool
}

// readAuditChunk reads up to max entries (0: all) after the key after (nil:
// from the start), whose record has seq prevSeq, in one read transaction.
func (s *Store) readAuditChunk(ctx context.Context, after []byte, prevSeq uint64, max int) (auditChunk, error) {
	var c auditChunk
	err := s.viewLog(ctx, func(tx *bolt.Tx) error {
		c = auditChunk{}
		audit, err := bucket(tx, bucketKeyAudit)
		if err != nil {
			return err
		}
		cur := audit.Cursor()
		k, v := cur.First()
		if after != nil {
			if k, v = cur.Seek(after); bytes.Equal(k, after) {
				k, v = cur.Next()
			}
		}
		for ; k != nil; k, v = cur.Next() {
			if max > 0 && len(c.records) == max {
				return nil
			}
			next := prevSeq + 1
			if n := len(c.records); n > 0 {
				next = c.records[n-1].Seq + 1
			}
			if len(k) != 8 {
				c.bad = &store.ChainError{Seq: next, Kind: store.ChainInserted,
					Message: fmt.Sprintf("the audit bucket holds a key %x that is not a sequence number", k)}
				return nil
			}
			r, err := store.DecodeAuditRecordJSON(v) // json.Unmarshal's result, cheaper
			if err != nil {
				c.bad = &store.ChainError{Seq: binary.BigEndian.Uint64(k), Kind: store.ChainEdited,
					Message: fmt.Sprintf("record is not readable: %v", err)}
				return nil
			}
			c.keys = append(c.keys, bytes.Clone(k))
			c.records = append(c.records, r)
		}
		c.done = true
		meta, err := bucket(tx, bucketKeyMeta)
		if err != nil {
			return err
		}
		c.headSeq, c.headHash, err = readHead(meta)
		if err != nil {
			return err
		}
		c.treeHead, c.treeErr = readTreeHead(meta, c.headSeq)
		tree, err := bucket(tx, bucketKeyTree)
		if err != nil {
			return err
		}
		// A damaged watermark is the tree's problem, reported as a tree
		// mismatch like a damaged tree head. The leaf past the head is
		// looked for under both keys: a tail cut from a schema-5 file
		// leaves its nodes under their level keys, and a migration then
		// puts the watermark at the cut head.
		layout, err := readNodeLayout(meta)
		if err != nil {
			if c.treeErr == nil {
				c.treeErr = err
			}
			layout = allByLevel
		}
		past := store.NodeID{Level: 0, Index: c.headSeq}
		c.treePastHead = tree.Get(layout.key(past)) != nil || tree.Get(allByLevel.key(past)) != nil
		return nil
	})
	return c, err
}

// verifyTreeChunk adds recs to tree, checking the nodes they complete
// against the stored ones in one read transaction.
func (s *Store) verifyTreeChunk(ctx context.Context, tree *store.TreeVerifier, recs []store.AuditRecord) error {
	return s.viewLog(ctx, func(tx *bolt.Tx) error {
		return tree.Add(ctx, recs, nodeReader(tx))
	})
}
