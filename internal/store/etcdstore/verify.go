package etcdstore

import (
	"bytes"
	"context"
	"errors"
	"fmt"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/signerd/signerd/internal/store"
)

// verifyChunk is how many audit records VerifyAudit reads per request.
const verifyChunk = 1000

// VerifyAudit walks the whole audit log with store.VerifyAuditChain and
// checks that the recorded head is its last record, exactly as boltstore
// does: nil or a *store.ChainError naming the first bad record (a missing
// tail is "deleted", a record past the head "inserted", a last record that
// differs from the head "edited"). The head and every record are read at
// one etcd revision, so appends by any replica may continue meanwhile.
func (s *Store) VerifyAudit(ctx context.Context) error {
	for try := 0; ; try++ {
		err := s.verifyAt(ctx)
		if errors.Is(err, rpctypes.ErrCompacted) && try < 3 {
			continue // the revision was compacted under us: start again
		}
		return err
	}
}

func (s *Store) verifyAt(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	hresp, err := s.cli.Get(ctx, s.l.head())
	if err != nil {
		return mapErr("read audit head", err)
	}
	rev := hresp.Header.Revision
	headSeq, headHash := uint64(0), store.GenesisHash()
	var (
		storedTree    store.TreeHead
		storedTreeErr error
	)
	if len(hresp.Kvs) > 0 {
		h, err := decodeHead(hresp.Kvs[0].Value)
		if err != nil {
			return err
		}
		headSeq, headHash = h.Seq, h.Hash
		storedTree, storedTreeErr = h.treeHead()
	}
	dir := s.l.recordsDir()
	var (
		lastSeq  uint64
		lastHash = store.GenesisHash()
		from     = dir
		tree     store.TreeVerifier
		treeErr  error // the tree's first problem, named after the chain's
	)
	for {
		c, err := s.readAuditChunk(ctx, from, rev, lastSeq, verifyChunk)
		if err != nil {
			return err
		}
		if err := store.VerifyAuditChain(c.records, lastHash, lastSeq); err != nil {
			if c.done {
				return err
			}
			// The classification can look ahead: give it the rest.
			all, rerr := s.readAuditChunk(ctx, from, rev, lastSeq, 0)
			if rerr != nil {
				return rerr
			}
			return store.VerifyAuditChain(all.records, lastHash, lastSeq)
		}
		for i, r := range c.records {
			if k := c.seqs[i]; k != r.Seq {
				return &store.ChainError{Seq: r.Seq, Kind: store.ChainEdited,
					Message: fmt.Sprintf("record %d is stored under key %d", r.Seq, k)}
			}
		}
		if c.bad != nil {
			return c.bad
		}
		// The stored tree must be the tree of these records (as
		// boltstore: reported only if the chain and head are sound).
		if treeErr == nil {
			treeErr = tree.Add(ctx, c.records, s.readNodes(rev))
		}
		if n := len(c.records); n > 0 {
			lastSeq, lastHash = c.records[n-1].Seq, c.records[n-1].Hash
			from = c.lastKey + "\x00"
		}
		if !c.done {
			continue
		}
		switch {
		case headSeq > lastSeq:
			return &store.ChainError{Seq: lastSeq + 1, Kind: store.ChainDeleted,
				Message: fmt.Sprintf("the log ends at %d but its head records %d: the tail was removed", lastSeq, headSeq)}
		case headSeq < lastSeq:
			return &store.ChainError{Seq: headSeq + 1, Kind: store.ChainInserted,
				Message: fmt.Sprintf("records follow the recorded head %d", headSeq)}
		case !bytes.Equal(headHash, lastHash):
			return &store.ChainError{Seq: lastSeq, Kind: store.ChainEdited,
				Message: "the last record's hash differs from the recorded head"}
		case treeErr != nil:
			return treeErr
		case storedTreeErr != nil || !tree.Matches(storedTree):
			// A tree key past the head means records were cut and
			// the head moved back; name that rather than the tree.
			past, err := s.cli.Get(ctx, s.l.tree(headSeq+1), clientv3.WithRange(rangeEnd(s.l.treeDir())), clientv3.WithLimit(1), clientv3.WithRev(rev))
			if err != nil {
				return mapErr("read tree", err)
			}
			if len(past.Kvs) > 0 {
				return &store.ChainError{Seq: lastSeq + 1, Kind: store.ChainDeleted,
					Message: fmt.Sprintf("the tree holds leaves past the head %d: records were removed and the head moved back", lastSeq)}
			}
			if storedTreeErr == nil {
				return tree.Check(storedTree)
			}
			return &store.ChainError{Seq: lastSeq, Kind: store.ChainTreeMismatch, Message: storedTreeErr.Error()}
		}
		return tree.Check(storedTree)
	}
}

// auditChunk is a run of consecutive audit record keys.
type auditChunk struct {
	seqs    []uint64 // the seq each record is stored under
	records []store.AuditRecord
	lastKey string
	// bad reports a key that could not be read as a record; records stops
	// before it.
	bad *store.ChainError
	// done: the chunk reaches the end of the records.
	done bool
}

// readAuditChunk reads up to max records (0: all) from the key from on, at
// revision rev; prevSeq is the seq of the record before from.
func (s *Store) readAuditChunk(ctx context.Context, from string, rev int64, prevSeq uint64, max int) (auditChunk, error) {
	var c auditChunk
	dir := s.l.recordsDir()
	for {
		limit := int64(verifyChunk)
		if max > 0 {
			limit = int64(max - len(c.records))
		}
		resp, err := s.cli.Get(ctx, from, clientv3.WithRange(rangeEnd(dir)), clientv3.WithLimit(limit), clientv3.WithRev(rev))
		if err != nil {
			if errors.Is(err, rpctypes.ErrCompacted) {
				return c, err
			}
			return c, mapErr("read audit log", err)
		}
		for _, kv := range resp.Kvs {
			next := prevSeq + 1
			if n := len(c.records); n > 0 {
				next = c.records[n-1].Seq + 1
			}
			seq, ok := parseSeq(string(kv.Key), dir)
			if !ok {
				c.bad = &store.ChainError{Seq: next, Kind: store.ChainInserted,
					Message: fmt.Sprintf("the audit log holds a key %q that is not a sequence number", kv.Key)}
				return c, nil
			}
			r, err := decode[store.AuditRecord](kv)
			if err != nil {
				c.bad = &store.ChainError{Seq: seq, Kind: store.ChainEdited,
					Message: fmt.Sprintf("record is not readable: %v", err)}
				return c, nil
			}
			c.seqs = append(c.seqs, seq)
			c.records = append(c.records, r)
			c.lastKey = string(kv.Key)
		}
		if !resp.More || len(resp.Kvs) == 0 {
			c.done = true
			return c, nil
		}
		if max > 0 && len(c.records) >= max {
			return c, nil
		}
		from = string(resp.Kvs[len(resp.Kvs)-1].Key) + "\x00"
	}
}
