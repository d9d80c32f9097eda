package etcdstore

import (
	"context"
	"fmt"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/signerd/signerd/internal/errdefs"
	"github.com/signerd/signerd/internal/store"
)

// migrateChunk is how many leaves one tree key of the migration holds.
const migrateChunk = 1024

// migrateTree brings a layout "1" prefix to "2": it builds the
// transparency log's tree of the records already there (their encodings
// are unchanged, so old checkpoints still verify), writes its nodes, and
// then, in one transaction guarded by the head and the layout version,
// puts the tree into the head and the new version. Replicas starting
// together may all build it; one transaction wins and the others find
// version "2". A replica of an older signerd that appends meanwhile moves
// the head, and the migration starts over; one still running afterwards
// would write heads without the tree, which the new code refuses: upgrade
// every replica together.
func (s *Store) migrateTree(ctx context.Context) error {
	for attempt := 0; attempt < 5; attempt++ {
		resp, err := s.cli.Get(ctx, s.l.head())
		if err != nil {
			return mapErr("read audit head", err)
		}
		headCmp := clientv3.Compare(clientv3.CreateRevision(s.l.head()), "=", 0)
		hv := headValue{}
		if len(resp.Kvs) > 0 {
			headCmp = clientv3.Compare(clientv3.ModRevision(s.l.head()), "=", resp.Kvs[0].ModRevision)
			if hv, err = decodeHead(resp.Kvs[0].Value); err != nil {
				return err
			}
			tree, err := s.buildTree(ctx, hv.Seq)
			if err != nil {
				return err
			}
			hv.Tree = tree
		}
		ops := []clientv3.Op{clientv3.OpPut(s.l.schema(), schemaVersion)}
		if len(resp.Kvs) > 0 {
			raw, err := encode(hv)
			if err != nil {
				return err
			}
			ops = append(ops, clientv3.OpPut(s.l.head(), raw))
		}
		txn, err := s.cli.Txn(ctx).
			If(headCmp, clientv3.Compare(clientv3.Value(s.l.schema()), "=", "1")).
			Then(ops...).
			Else(clientv3.OpGet(s.l.schema())).
			Commit()
		if err != nil {
			return mapErr("migrate layout", err)
		}
		if txn.Succeeded {
			s.log.Info("migrated etcd layout", "from", "1", "to", schemaVersion, "leaves", hv.Seq)
			return nil
		}
		if kvs := txn.Responses[0].GetResponseRange().GetKvs(); len(kvs) == 1 && string(kvs[0].Value) == schemaVersion {
			return nil // another replica migrated it
		}
	}
	return fmt.Errorf("etcd prefix %s: the audit log kept growing while its tree was built (is a replica of an older signerd still running? stop it): %w",
		s.l.prefix, errdefs.ErrUnavailable)
}

// buildTree writes the nodes of the tree of records 1..size, a tree key
// per migrateChunk leaves, and returns its compact range.
func (s *Store) buildTree(ctx context.Context, size uint64) ([][]byte, error) {
	var (
		th     store.TreeHead
		leaves [][]byte
		next   = uint64(1)
	)
	flush := func() error {
		if len(leaves) == 0 {
			return nil
		}
		var nodes []store.TreeNode
		var err error
		if th, nodes, err = store.AppendLeaves(th, leaves); err != nil {
			return err
		}
		if _, err := s.cli.Put(ctx, s.l.tree(th.Size), encodeNodes(nodes)); err != nil {
			return mapErr("write tree", err)
		}
		leaves = leaves[:0]
		return nil
	}
	err := s.forEachFrom(ctx, s.l.record(1), s.l.record(size+1), func(kv *keyValue) error {
		r, err := decode[store.AuditRecord](kv)
		if err != nil {
			return err
		}
		if r.Seq != next || string(kv.Key) != s.l.record(next) {
			return fmt.Errorf("audit record %d is missing or misplaced, so the log cannot become a tree (run signctl audit verify): %w", next, errdefs.ErrFailedPrecondition)
		}
		next++
		leaves = append(leaves, store.LeafHash(r))
		if len(leaves) == migrateChunk {
			return flush()
		}
		return nil
	})
	if err == nil {
		err = flush()
	}
	if err == nil && th.Size != size {
		err = fmt.Errorf("the audit log ends at %d but its head records %d, so it cannot become a tree (run signctl audit verify): %w", th.Size, size, errdefs.ErrFailedPrecondition)
	}
	return th.Hashes, err
}
