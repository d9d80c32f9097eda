package etcdstore

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/signerd/signerd/internal/errdefs"
	"github.com/signerd/signerd/internal/store"
)

// importChunk bounds the items of one import transaction (etcd's default
// limit is 128 operations and 1.5 MiB per transaction).
const importChunk = 40

// BeginImport marks the store as being imported into (meta/import). It
// fails with ErrFailedPrecondition unless the prefix holds nothing but the
// layout version.
func (s *Store) BeginImport(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	resp, err := s.cli.Get(ctx, s.l.prefix, clientv3.WithPrefix(), clientv3.WithKeysOnly(), clientv3.WithLimit(2))
	if err != nil {
		return mapErr("read", err)
	}
	for _, kv := range resp.Kvs {
		if string(kv.Key) != s.l.schema() {
			return fmt.Errorf("etcd prefix %s is not empty (it holds %q): refusing to import into it: %w", s.l.prefix, kv.Key, errdefs.ErrFailedPrecondition)
		}
	}
	t, err := s.cli.Txn(ctx).
		If(clientv3.Compare(clientv3.CreateRevision(s.l.importMark()), "=", 0),
			clientv3.Compare(clientv3.CreateRevision(s.l.head()), "=", 0)).
		Then(clientv3.OpPut(s.l.importMark(), "in progress")).
		Commit()
	if err != nil {
		return mapErr("write", err)
	}
	if !t.Succeeded {
		return fmt.Errorf("etcd prefix %s: another import or writer started meanwhile: %w", s.l.prefix, errdefs.ErrFailedPrecondition)
	}
	s.importSeq.Store(0)
	return nil
}

// FinishImport clears the import mark.
func (s *Store) FinishImport(ctx context.Context) error {
	if _, err := s.cli.Delete(ctx, s.l.importMark()); err != nil {
		return mapErr("write", err)
	}
	return nil
}

// importTxn writes n items in transactions of at most importChunk items,
// each transaction requiring every key it creates to be absent.
func (s *Store) importTxn(ctx context.Context, what string, n int, item func(i int) ([]string, []clientv3.Op, error)) error {
	for start := 0; start < n; start += importChunk {
		var cmps []clientv3.Cmp
		var ops []clientv3.Op
		for i := start; i < min(n, start+importChunk); i++ {
			keys, o, err := item(i)
			if err != nil {
				return err
			}
			for _, k := range keys {
				cmps = append(cmps, absent(k))
			}
			ops = append(ops, o...)
		}
		resp, err := s.cli.Txn(ctx).If(cmps...).Then(ops...).Commit()
		if err != nil {
			return mapErr("import "+what, err)
		}
		if !resp.Succeeded {
			return fmt.Errorf("import %s: a key to be created already exists: %w", what, errdefs.ErrAlreadyExists)
		}
		s.commits.Add(1)
	}
	return nil
}

// ImportKeys records keys as given, with their fingerprint and CKA_ID
// index entries.
func (s *Store) ImportKeys(ctx context.Context, keys []store.Key) error {
	for _, k := range keys {
		if err := store.CheckName("key name", k.Name); err != nil {
			return err
		}
		if len(k.Versions) > importChunk {
			return store.Invalid("key %q has %d versions; at most %d can be imported", k.Name, len(k.Versions), importChunk)
		}
	}
	// One key per transaction: a key brings 1 + 2×versions puts.
	for _, k := range keys {
		err := s.importTxn(ctx, "key "+k.Name, 1, func(int) ([]string, []clientv3.Op, error) {
			raw, err := encode(k)
			if err != nil {
				return nil, nil, err
			}
			names := []string{s.l.key(k.Name)}
			ops := []clientv3.Op{clientv3.OpPut(s.l.key(k.Name), raw)}
			for _, v := range k.Versions {
				ref, err := encode(fingerprintRef{Key: k.Name, Version: v.Version})
				if err != nil {
					return nil, nil, err
				}
				names = append(names, s.l.fingerprint(v.Fingerprint), s.l.ckaID(v.CKAID))
				ops = append(ops, clientv3.OpPut(s.l.fingerprint(v.Fingerprint), ref), clientv3.OpPut(s.l.ckaID(v.CKAID), k.Name))
			}
			return names, ops, nil
		})
		if err != nil {
			return err
		}
	}
	return nil
}

// ImportOrgs records orgs as given.
func (s *Store) ImportOrgs(ctx context.Context, orgs []store.Org) error {
	return s.importTxn(ctx, "orgs", len(orgs), func(i int) ([]string, []clientv3.Op, error) {
		o := orgs[i]
		if err := store.CheckName("org", o.ID); err != nil {
			return nil, nil, err
		}
		raw, err := encode(o)
		if err != nil {
			return nil, nil, err
		}
		return []string{s.l.org(o.ID)}, []clientv3.Op{clientv3.OpPut(s.l.org(o.ID), raw)}, nil
	})
}

// ImportAuditKey records the audit checkpoint key.
func (s *Store) ImportAuditKey(ctx context.Context, k store.Key) error {
	return s.importTxn(ctx, "audit key", 1, func(int) ([]string, []clientv3.Op, error) {
		raw, err := encode(k)
		if err != nil {
			return nil, nil, err
		}
		return []string{s.l.auditKey()}, []clientv3.Op{clientv3.OpPut(s.l.auditKey(), raw)}, nil
	})
}

// ImportLogKey records the log's note key.
func (s *Store) ImportLogKey(ctx context.Context, k store.Key) error {
	return s.importTxn(ctx, "log key", 1, func(int) ([]string, []clientv3.Op, error) {
		raw, err := encode(k)
		if err != nil {
			return nil, nil, err
		}
		return []string{s.l.logKey()}, []clientv3.Op{clientv3.OpPut(s.l.logKey(), raw)}, nil
	})
}

// ImportAudit appends recs verbatim after the current head and moves the
// head to the last one, chunk by chunk (each chunk guarded by the head it
// continues).
func (s *Store) ImportAudit(ctx context.Context, recs []store.AuditRecord) error {
	for start := 0; start < len(recs); start += importChunk {
		chunk := recs[start:min(len(recs), start+importChunk)]
		kv, err := s.get(ctx, s.l.head())
		if err != nil {
			return err
		}
		var headSeq uint64
		var tree store.TreeHead
		if kv != nil {
			h, err := decodeHead(kv.Value)
			if err != nil {
				return err
			}
			headSeq = h.Seq
			if tree, err = h.treeHead(); err != nil {
				return err
			}
		}
		leaves := make([][]byte, len(chunk))
		cmps := []clientv3.Cmp{unchanged(s.l.head(), kv)}
		var ops []clientv3.Op
		for i, r := range chunk {
			if want := headSeq + uint64(i) + 1; r.Seq != want {
				return fmt.Errorf("import audit: record %d arrives where %d is expected: %w", r.Seq, want, errdefs.ErrInvalidArgument)
			}
			raw, err := encode(r)
			if err != nil {
				return err
			}
			cmps = append(cmps, absent(s.l.record(r.Seq)))
			ops = append(ops, clientv3.OpPut(s.l.record(r.Seq), raw))
			leaves[i] = store.LeafHash(r)
			s.rememberSignatureSeq(r)
		}
		last := chunk[len(chunk)-1]
		// The copy gets the tree the source has: the same leaves give the
		// same tree, so its roots and old notes still verify.
		tree, nodes, err := store.AppendLeaves(tree, leaves)
		if err != nil {
			return err
		}
		ops = append(ops, clientv3.OpPut(s.l.tree(last.Seq), encodeNodes(nodes)))
		hv, err := encode(headValue{Seq: last.Seq, Hash: last.Hash, Tree: tree.Hashes})
		if err != nil {
			return err
		}
		ops = append(ops, clientv3.OpPut(s.l.head(), hv))
		resp, err := s.cli.Txn(ctx).If(cmps...).Then(ops...).Commit()
		if err != nil {
			return mapErr("import audit", err)
		}
		if !resp.Succeeded {
			return fmt.Errorf("import audit: the log changed during the import: %w", errdefs.ErrFailedPrecondition)
		}
		s.commits.Add(1)
	}
	return nil
}

// ImportSignatures records signature records in the order given. Each gets
// the suffix of an audit seq, as PutSignature would: the imported ones are
// numbered 1, 2, … in order, which keeps them older than any signature
// written after the import (whose suffix is the seq of its audit record,
// past the imported head), as long as there are no more signature records
// than audit records; an import that would break that order is refused.
//
// A signature whose audit record carries it (store.EncodeAuditRecord
// version 2) gets that record's seq instead, as PutSignature gave it, so
// SignatureLeaf finds its leaf in the copy. Those records all follow every
// record without a signature, so their seqs stay above the numbering and
// the order per digest is kept.
func (s *Store) ImportSignatures(ctx context.Context, recs []store.SignatureRecord) error {
	head, _, err := s.AuditHead(ctx)
	if err != nil {
		return err
	}
	seqs := make([]uint64, len(recs))
	next := s.importSeq.Load()
	taken := map[*importedSig]int{}
	for i, r := range recs {
		if is := s.importedSignature(r); is != nil && is.used+taken[is] < len(is.seqs) {
			// The same signature recorded again (Ed25519 re-signing an
			// unchanged artifact) has its own audit record: records come
			// oldest first, as do the audit records carrying them.
			seqs[i] = is.seqs[is.used+taken[is]]
			taken[is]++
			continue
		}
		next++
		seqs[i] = next
	}
	if next > head {
		return fmt.Errorf("import signatures: %d signature records but only %d audit records: each signature has its audit record, so the source is inconsistent: %w",
			next, head, errdefs.ErrFailedPrecondition)
	}
	err = s.importTxn(ctx, "signatures", len(recs), func(i int) ([]string, []clientv3.Op, error) {
		r := recs[i]
		if err := store.CheckDigest(r.Digest); err != nil {
			return nil, nil, err
		}
		raw, err := encode(r)
		if err != nil {
			return nil, nil, err
		}
		key := s.l.signature(r.Digest, seqs[i])
		return []string{key}, []clientv3.Op{clientv3.OpPut(key, raw)}, nil
	})
	if err == nil {
		s.importSeq.Store(next)
		s.importMu.Lock()
		for is, n := range taken {
			is.used += n
		}
		s.importMu.Unlock()
	}
	return err
}

// importedSig is the audit records, in seq order, that carry one
// signature over one digest, and how many signature records an import has
// matched with them so far.
type importedSig struct {
	seqs []uint64
	used int
}

// importSigKey identifies a signature by digest and signature bytes.
func importSigKey(digest, sig []byte) [2 * sha256.Size]byte {
	var k [2 * sha256.Size]byte
	copy(k[:sha256.Size], digest)
	sum := sha256.Sum256(sig)
	copy(k[sha256.Size:], sum[:])
	return k
}

// rememberSignatureSeq notes, during an import, the seq of an audit
// record that carries a signature, for ImportSignatures.
func (s *Store) rememberSignatureSeq(r store.AuditRecord) {
	digest, err := hex.DecodeString(r.Digest)
	if err != nil || len(digest) != sha256.Size || len(r.Signature) == 0 {
		return
	}
	s.importMu.Lock()
	defer s.importMu.Unlock()
	if s.importSigs == nil {
		s.importSigs = make(map[[2 * sha256.Size]byte]*importedSig)
	}
	k := importSigKey(digest, r.Signature)
	is := s.importSigs[k]
	if is == nil {
		is = &importedSig{}
		s.importSigs[k] = is
	}
	is.seqs = append(is.seqs, r.Seq)
}

// importedSignature returns the audit records an import has seen carry r's
// signature over r's digest, or nil.
func (s *Store) importedSignature(r store.SignatureRecord) *importedSig {
	if len(r.Digest) != sha256.Size {
		return nil
	}
	s.importMu.Lock()
	defer s.importMu.Unlock()
	return s.importSigs[importSigKey(r.Digest, r.Signature)]
}

// ImportCheckpoints records checkpoints verbatim.
func (s *Store) ImportCheckpoints(ctx context.Context, cps []store.Checkpoint) error {
	return s.importTxn(ctx, "checkpoints", len(cps), func(i int) ([]string, []clientv3.Op, error) {
		c := cps[i]
		raw, err := encode(c)
		if err != nil {
			return nil, nil, err
		}
		return []string{s.l.checkpoint(c.Seq)}, []clientv3.Op{clientv3.OpPut(s.l.checkpoint(c.Seq), raw)}, nil
	})
}
