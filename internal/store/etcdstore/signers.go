package etcdstore

import (
	"context"
	"slices"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/signerd/signerd/internal/store"
)

// signerGuard is what the committer knows of one signing key's record:
// its mod revision (0: absent) and its revoked versions as of that
// revision. A batch of signature records carries, per key it names, the
// compare that the record is still at that revision; the batch is built
// only from records whose version is not revoked in it. So a revoke
// committed by any replica between a Sign's read of its key and the
// batch fails the batch, which is rebuilt without that version's records
// (store.RevokedBeforeRecorded): no record follows its version's
// revocation in the log.
type signerGuard struct {
	rev     int64
	revoked []uint32
}

func guardOf(kv *mvccpb.KeyValue) (signerGuard, error) {
	if kv == nil {
		return signerGuard{}, nil
	}
	k, err := decode[store.Key](kv)
	if err != nil {
		return signerGuard{}, err
	}
	return signerGuard{rev: kv.ModRevision, revoked: store.RevokedVersions(k)}, nil
}

// signerNames returns the distinct key names ws's signature records name,
// in first-seen order.
func signerNames(ws []*write) []string {
	var names []string
	for _, w := range ws {
		if w.sig != "" && !slices.Contains(names, w.signer) {
			names = append(names, w.signer)
		}
	}
	return names
}

// guardSigners reads, in one round trip, the records of the signing keys
// (signerNames) the committer has not seen yet. The committer goroutine
// owns s.guards.
func (s *Store) guardSigners(ctx context.Context, signers []string) error {
	var names []string
	var gets []clientv3.Op
	for _, name := range signers {
		if _, ok := s.guards[name]; !ok {
			names = append(names, name)
			gets = append(gets, clientv3.OpGet(s.l.key(name)))
		}
	}
	if len(gets) == 0 {
		return nil
	}
	// At most maxBatch reads: within etcd's operations per transaction.
	resp, err := s.cli.Txn(ctx).Then(gets...).Commit()
	if err != nil {
		return mapErr("read signing keys", err)
	}
	for i, name := range names {
		var kv *mvccpb.KeyValue
		if kvs := resp.Responses[i].GetResponseRange().GetKvs(); len(kvs) > 0 {
			kv = kvs[0]
		}
		g, err := guardOf(kv)
		if err != nil {
			return err
		}
		s.guards[name] = g
	}
	return nil
}

// refuseRevoked answers the writes of ws whose key version is revoked as
// the committer last saw it, and returns the others.
func (s *Store) refuseRevoked(ws []*write) []*write {
	if !slices.ContainsFunc(ws, s.revokedWrite) {
		return ws
	}
	live := ws[:0:0]
	for _, w := range ws {
		if s.revokedWrite(w) {
			w.done <- store.RevokedBeforeRecorded(w.signer, w.version)
			continue
		}
		live = append(live, w)
	}
	return live
}

// revokedWrite reports whether w is a signature record whose key version
// is revoked as the committer last saw it.
func (s *Store) revokedWrite(w *write) bool {
	return w.sig != "" && slices.Contains(s.guards[w.signer].revoked, w.version)
}

// signerCompares are the batch's compares that its signing keys' records
// are as the committer saw them, and the reads that refresh what it saw
// when a compare fails (refreshSigners).
func (s *Store) signerCompares(names []string) ([]clientv3.Cmp, []clientv3.Op) {
	cmps := make([]clientv3.Cmp, 0, len(names))
	gets := make([]clientv3.Op, 0, len(names))
	for _, name := range names {
		cmps = append(cmps, clientv3.Compare(clientv3.ModRevision(s.l.key(name)), "=", s.guards[name].rev))
		gets = append(gets, clientv3.OpGet(s.l.key(name)))
	}
	return cmps, gets
}

// refreshSigners updates the guards of names from a failed batch's Else
// reads (one range response each, in order) and reports whether any key
// record had changed.
func (s *Store) refreshSigners(names []string, resps []*pb.ResponseOp) (changed bool, err error) {
	for i, name := range names {
		if i >= len(resps) {
			break
		}
		var kv *mvccpb.KeyValue
		var rev int64
		if kvs := resps[i].GetResponseRange().GetKvs(); len(kvs) > 0 {
			kv, rev = kvs[0], kvs[0].ModRevision
		}
		if rev == s.guards[name].rev {
			// Unchanged: the usual case, a batch that lost the head
			// to another replica. No decode.
			continue
		}
		g, err := guardOf(kv)
		if err != nil {
			return changed, err
		}
		changed = true
		s.guards[name] = g
	}
	return changed, nil
}
