package etcdstore

import (
	"bytes"
	"context"
	"fmt"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/signerd/signerd/internal/errdefs"
	"github.com/signerd/signerd/internal/store"
)

// SetAuditKey records the audit checkpoint key under audit/key, with its
// audit event, in one transaction that requires the key to be absent:
// ErrAlreadyExists if one is recorded (two replicas starting on an empty
// store race here, and exactly one wins).
func (s *Store) SetAuditKey(ctx context.Context, k store.Key, ev store.AuditEvent) error {
	return s.setServiceKey(ctx, s.l.auditKey(), "an audit key", k, ev)
}

// AuditKey returns the audit checkpoint key; ErrNotFound if none is
// recorded.
func (s *Store) AuditKey(ctx context.Context) (store.Key, error) {
	return s.serviceKey(ctx, s.l.auditKey(), "audit key")
}

// maxCheckpointTries bounds PutCheckpoint's retries when checkpoints are
// written concurrently (every replica signs them).
const maxCheckpointTries = 20

// PutCheckpoint records c under its seq after checking that it certifies
// the log as it is: record c.Seq exists with hash c.Hash, c.Seq is at most
// the head, and c.Seq is past the newest checkpoint. The transaction
// requires that no checkpoint was written since those reads (a compare on
// the whole checkpoints/ range); audit records never change, and the head
// only grows, so the other checks stay true. It does not check the
// signature (internal/auditlog verifies).
func (s *Store) PutCheckpoint(ctx context.Context, c store.Checkpoint) error {
	switch {
	case c.Seq == 0:
		return store.Invalid("checkpoint seq is 0; the first audit record is 1")
	case len(c.Hash) != store.AuditHashSize:
		return store.Invalid("checkpoint hash is %d bytes, want %d", len(c.Hash), store.AuditHashSize)
	case len(c.Signature) == 0:
		return store.Invalid("checkpoint at seq %d is not signed", c.Seq)
	}
	if err := store.CheckName("checkpoint key fingerprint", c.KeyFingerprint); err != nil {
		return err
	}
	if err := store.CheckTime("checkpoint time", c.Time); err != nil {
		return err
	}
	c.Time = c.Time.UTC()
	raw, err := encode(c)
	if err != nil {
		return err
	}
	dir := s.l.checkpointsDir()
	for range maxCheckpointTries {
		if err := ctx.Err(); err != nil {
			return err
		}
		resp, err := s.cli.Txn(ctx).Then(
			clientv3.OpGet(dir, clientv3.WithLastKey()...),
			clientv3.OpGet(s.l.head()),
			clientv3.OpGet(s.l.record(c.Seq)),
		).Commit()
		if err != nil {
			return mapErr("read", err)
		}
		rev := resp.Header.Revision
		if last := resp.Responses[0].GetResponseRange().GetKvs(); len(last) > 0 {
			lastSeq, ok := parseSeq(string(last[0].Key), dir)
			switch {
			case !ok:
				return fmt.Errorf("checkpoint stored under %q is not a sequence number: %w", last[0].Key, errdefs.ErrInternal)
			case c.Seq == lastSeq:
				return fmt.Errorf("a checkpoint at seq %d is already recorded: %w", c.Seq, errdefs.ErrAlreadyExists)
			case c.Seq < lastSeq:
				return fmt.Errorf("checkpoint at seq %d is older than the newest, at %d: %w", c.Seq, lastSeq, errdefs.ErrFailedPrecondition)
			}
		}
		var headSeq uint64
		if kvs := resp.Responses[1].GetResponseRange().GetKvs(); len(kvs) > 0 {
			h, err := decodeHead(kvs[0].Value)
			if err != nil {
				return err
			}
			headSeq = h.Seq
		}
		if c.Seq > headSeq {
			return fmt.Errorf("checkpoint at seq %d is past the audit head %d: %w", c.Seq, headSeq, errdefs.ErrFailedPrecondition)
		}
		kvs := resp.Responses[2].GetResponseRange().GetKvs()
		if len(kvs) == 0 {
			return fmt.Errorf("checkpoint at seq %d does not match audit record %d: %w", c.Seq, c.Seq, errdefs.ErrFailedPrecondition)
		}
		rec, err := decode[store.AuditRecord](kvs[0])
		if err != nil {
			return err
		}
		if rec.Seq != c.Seq || !bytes.Equal(rec.Hash, c.Hash) {
			return fmt.Errorf("checkpoint at seq %d does not match audit record %d: %w", c.Seq, c.Seq, errdefs.ErrFailedPrecondition)
		}
		put, err := s.cli.Txn(ctx).
			If(clientv3.Compare(clientv3.ModRevision(dir), "<", rev+1).WithRange(rangeEnd(dir))).
			Then(clientv3.OpPut(s.l.checkpoint(c.Seq), raw)).
			Commit()
		if err != nil {
			return mapErr("write checkpoint", err)
		}
		if put.Succeeded {
			s.commits.Add(1)
			return nil
		}
		// Another replica wrote a checkpoint meanwhile: decide again.
	}
	return fmt.Errorf("checkpoint at seq %d: checkpoints kept changing concurrently: %w", c.Seq, errdefs.ErrUnavailable)
}

// ListCheckpoints returns every checkpoint in ascending seq order. A
// checkpoint stored under a key other than its own seq is returned as
// stored; auditlog.Verify checks each on its own merits.
func (s *Store) ListCheckpoints(ctx context.Context) ([]store.Checkpoint, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	dir := s.l.checkpointsDir()
	var out []store.Checkpoint
	err := s.forEach(ctx, dir, func(kv *keyValue) error {
		c, err := decode[store.Checkpoint](kv)
		if err != nil {
			seq, _ := parseSeq(string(kv.Key), dir)
			return &store.ChainError{Seq: seq, Kind: store.ChainBadCheckpoint,
				Message: fmt.Sprintf("checkpoint stored under %q is not readable: %v", kv.Key, err)}
		}
		out = append(out, c)
		return nil
	})
	return out, err
}
