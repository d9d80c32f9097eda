package etcdstore

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"sync"
	"testing"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/signerd/signerd/internal/auditlog"
	"github.com/signerd/signerd/internal/store"
	"github.com/signerd/signerd/internal/store/storetest"
	"github.com/signerd/signerd/internal/testutil/etcdtest"
)

// TestMigrateLayout1: a prefix written in layout "1" (before the tree:
// records, a head without a tree, signatures, an ECDSA checkpoint), as the
// keys in doc.go of that version lay it out. Two replicas opening it at
// once both end on layout "2" with one tree; the old checkpoint still
// verifies; appends continue the tree.
func TestMigrateLayout1(t *testing.T) {
	c := etcdtest.Start(t, 1, etcdtest.Options{})
	cli := newClient(t, c)
	ctx := context.Background()
	prefix := newPrefix()
	// Puts go in transactions of 100, so the fixture is written quickly.
	var ops []clientv3.Op
	flush := func() {
		t.Helper()
		if len(ops) == 0 {
			return
		}
		if _, err := cli.Txn(ctx).Then(ops...).Commit(); err != nil {
			t.Fatal(err)
		}
		ops = ops[:0]
	}
	put := func(k string, v any) {
		t.Helper()
		raw, ok := v.(string)
		if !ok {
			b, err := json.Marshal(v)
			if err != nil {
				t.Fatal(err)
			}
			raw = string(b)
		}
		ops = append(ops, clientv3.OpPut(prefix+k, raw))
		if len(ops) == 100 {
			flush()
		}
	}
	put("meta/schema", "1")
	audit, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	const n = 1100 // more than one tree key of the migration
	prev := store.GenesisHash()
	var cp store.Checkpoint
	for seq := uint64(1); seq <= n; seq++ {
		e := ev("sign")
		rec := sigRecord(int(seq))
		e.Digest = hex.EncodeToString(rec.Digest)
		r := store.AuditRecord{Seq: seq, PrevHash: prev, AuditEvent: e}
		r.Hash = store.HashAuditRecord(r)
		prev = r.Hash
		put(fmt.Sprintf("audit/records/%016x", seq), r)
		put(fmt.Sprintf("signatures/%x/%016x", rec.Digest, seq), rec)
		if seq == 1000 {
			cp, err = auditlog.SignCheckpoint(audit, store.Checkpoint{Seq: seq, Hash: r.Hash, Time: t0, KeyFingerprint: auditlog.Fingerprint(&audit.PublicKey)})
			if err != nil {
				t.Fatal(err)
			}
			put(fmt.Sprintf("audit/checkpoints/%016x", seq), cp)
		}
	}
	put("audit/head", map[string]any{"seq": n, "hash": prev})
	flush()

	var wg sync.WaitGroup
	stores := make([]*Store, 2)
	errs := make([]error, 2)
	for i := range stores {
		wg.Go(func() { stores[i], errs[i] = Open(ctx, Options{Client: newClient(t, c), Prefix: prefix}) })
	}
	wg.Wait()
	for i, s := range stores {
		if errs[i] != nil {
			t.Fatalf("replica %d: Open of a layout 1 prefix: %v", i, errs[i])
		}
		t.Cleanup(func() { s.Close() })
	}
	if kv, err := stores[0].get(ctx, prefix+"meta/schema"); err != nil || string(kv.Value) != schemaVersion {
		t.Fatalf("layout after migration: %v, %v", kv, err)
	}
	for _, s := range stores {
		if err := s.VerifyAudit(ctx); err != nil {
			t.Fatalf("VerifyAudit after migration: %v", err)
		}
		rep, err := auditlog.Verify(ctx, s, &audit.PublicKey)
		if err != nil || rep.Latest == nil || rep.Latest.Seq != 1000 {
			t.Fatalf("the old checkpoint after migration: %+v, %v", rep.Latest, err)
		}
	}
	root, err := stores[0].LogRoot(ctx, 1000)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 10 {
		if _, err := stores[i%2].AppendAudit(ctx, ev("after")); err != nil {
			t.Fatal(err)
		}
	}
	storetest.CheckLog(t, stores[1])
	if again, err := stores[1].LogRoot(ctx, 1000); err != nil || !bytes.Equal(again, root) {
		t.Fatalf("the root of 1000 leaves changed with appends: %x, then %x (%v)", root, again, err)
	}
	if err := stores[0].VerifyAudit(ctx); err != nil {
		t.Fatalf("VerifyAudit after appends: %v", err)
	}
}
