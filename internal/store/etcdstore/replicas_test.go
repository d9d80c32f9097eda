package etcdstore

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/signerd/signerd/internal/errdefs"
	"github.com/signerd/signerd/internal/store"
	"github.com/signerd/signerd/internal/store/storetest"
	"github.com/signerd/signerd/internal/testutil/etcdtest"
)

// Tests of what a shared store adds to the conformance suite: several
// writers (replicas) on one prefix, a member dying under load, damage to
// the log, the watch, the checks of Open.

var t0 = time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)

func ev(op string) store.AuditEvent {
	return store.AuditEvent{Time: t0, Caller: "uid:1000", Operation: op, Outcome: "ok"}
}

func testKey(name string) store.Key {
	sum := sha256.Sum256([]byte(name))
	return store.Key{Name: name, Algorithm: "ed25519", CreatedAt: t0, Versions: []store.KeyVersion{{
		Version: 1, CKAID: sum[:16], PublicKey: sum[:], Fingerprint: hex.EncodeToString(sum[:]), State: store.KeyActive, CreatedAt: t0,
	}}}
}

func sigRecord(i int) store.SignatureRecord {
	d := sha256.Sum256(fmt.Appendf(nil, "artifact %d", i))
	return store.SignatureRecord{Digest: d[:], Format: store.FormatCloacina, KeyName: "k", KeyVersion: 1,
		Fingerprint: "fp", Algorithm: "ed25519", Signature: bytes.Repeat([]byte{1}, 64), SignedAt: t0}
}

func newClient(t *testing.T, c *etcdtest.Cluster) *clientv3.Client { return c.Client(t) }

// TestReplicasShareOneChain: two stores on one prefix, each with its own
// etcd client (two replicas), write concurrently. Every write lands, the
// audit log is one chain with no gap, and names stay unique: of two
// replicas creating the same key, exactly one succeeds.
func TestReplicasShareOneChain(t *testing.T) {
	c := etcdtest.Start(t, 3, etcdtest.Options{})
	prefix := newPrefix()
	a, b := openOn(t, newClient(t, c), prefix), openOn(t, newClient(t, c), prefix)
	ctx := context.Background()

	const sigs, names = 40, 8
	var wg sync.WaitGroup
	var created, exists atomic.Int64
	errs := make(chan error, 2*sigs+2*names)
	for i := range sigs {
		for _, s := range []*Store{a, b} {
			wg.Go(func() {
				rec := sigRecord(i)
				errs <- s.PutSignature(ctx, rec, ev("sign"))
			})
		}
	}
	for i := range names {
		for _, s := range []*Store{a, b} {
			wg.Go(func() {
				err := s.CreateKey(ctx, testKey(fmt.Sprintf("key-%d", i)), ev("key.create"))
				switch {
				case err == nil:
					created.Add(1)
				case errors.Is(err, errdefs.ErrAlreadyExists):
					exists.Add(1)
				default:
					errs <- err
				}
			})
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if created.Load() != names || exists.Load() != names {
		t.Fatalf("%d CreateKey succeeded and %d were refused, want %d and %d", created.Load(), exists.Load(), names, names)
	}
	for _, s := range []*Store{a, b} {
		if err := s.VerifyAudit(ctx); err != nil {
			t.Fatalf("VerifyAudit: %v", err)
		}
	}
	recs, err := b.ListAudit(ctx, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	if want := 2*sigs + names; len(recs) != want {
		t.Fatalf("%d audit records, want %d", len(recs), want)
	}
	for i := range sigs {
		got, err := a.SignaturesByDigest(ctx, sigRecord(i).Digest)
		if err != nil || len(got) != 2 {
			t.Fatalf("digest %d: %d records (%v), want 2", i, len(got), err)
		}
	}
	// One tree: both replicas serve the same roots and proofs, each the
	// tree of the one chain.
	storetest.CheckLog(t, b)
	if n, err := a.LogSize(ctx); err != nil || n != uint64(len(recs)) {
		t.Fatalf("replica A's log size %d, %v; want %d", n, err, len(recs))
	}
	ra, errA := a.LogRoot(ctx, uint64(len(recs)))
	rb, errB := b.LogRoot(ctx, uint64(len(recs)))
	if errA != nil || errB != nil || !bytes.Equal(ra, rb) {
		t.Fatalf("replicas serve different roots: %x (%v), %x (%v)", ra, errA, rb, errB)
	}
	t.Logf("%d writes in %d + %d transactions", 2*sigs+2*names, a.Commits(), b.Commits())
}

// TestMemberKilledUnderLoad kills the leader while writers sign: every
// acknowledged signature is there afterwards and the chain verifies.
func TestMemberKilledUnderLoad(t *testing.T) {
	c := etcdtest.Start(t, 3, etcdtest.Options{})
	s := openOn(t, newClient(t, c), newPrefix())
	ctx := context.Background()

	var (
		acked   sync.Map
		n, fail atomic.Int64
		stop    = make(chan struct{})
		wg      sync.WaitGroup
	)
	for w := range 8 {
		wg.Go(func() {
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				rec := sigRecord(w*100000 + i)
				if err := s.PutSignature(ctx, rec, ev("sign")); err != nil {
					fail.Add(1)
					continue
				}
				acked.Store(string(rec.Digest), true)
				n.Add(1)
			}
		})
	}
	waitFor(t, "signatures before the kill", func() bool { return n.Load() >= 50 })
	leader := c.Leader()
	if leader < 0 {
		leader = 0
	}
	c.Kill(leader)
	before := n.Load()
	waitFor(t, "signatures after the kill", func() bool { return n.Load() >= before+50 })
	close(stop)
	wg.Wait()
	t.Logf("killed member %d (the leader); %d signatures acknowledged, %d calls failed", leader, n.Load(), fail.Load())

	if err := s.VerifyAudit(ctx); err != nil {
		t.Fatalf("VerifyAudit: %v", err)
	}
	count := 0
	acked.Range(func(k, _ any) bool {
		got, err := s.SignaturesByDigest(ctx, []byte(k.(string)))
		if err != nil || len(got) != 1 {
			t.Errorf("acknowledged signature %x: %d records (%v)", k, len(got), err)
		}
		count++
		return true
	})
	head, _, err := s.AuditHead(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if head < uint64(count) {
		t.Fatalf("audit head %d < %d acknowledged signatures", head, count)
	}
	c.Restart(leader)
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("gave up waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestDamage edits the log behind the store's back, as someone with write
// access to etcd could, and checks that VerifyAudit names it and that
// appends refuse to overwrite a record past the head.
func TestDamage(t *testing.T) {
	c := etcdtest.Start(t, 1, etcdtest.Options{})
	cli := newClient(t, c)
	ctx := context.Background()
	fill := func(t *testing.T) *Store {
		s := openOn(t, cli, newPrefix())
		for range 5 {
			if _, err := s.AppendAudit(ctx, ev("verify")); err != nil {
				t.Fatal(err)
			}
		}
		return s
	}
	put := func(t *testing.T, key string, v any) {
		raw, err := encode(v)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := cli.Put(ctx, key, raw); err != nil {
			t.Fatal(err)
		}
	}
	record := func(t *testing.T, s *Store, seq uint64) store.AuditRecord {
		recs, err := s.ListAudit(ctx, seq-1, 1)
		if err != nil || len(recs) != 1 {
			t.Fatalf("record %d: %v", seq, err)
		}
		return recs[0]
	}
	for _, tt := range []struct {
		name   string
		damage func(t *testing.T, s *Store)
		seq    uint64
		kind   string
	}{
		{"edited", func(t *testing.T, s *Store) {
			r := record(t, s, 3)
			r.Detail = "changed"
			put(t, s.l.record(3), r)
		}, 3, store.ChainEdited},
		{"deleted", func(t *testing.T, s *Store) {
			if _, err := cli.Delete(ctx, s.l.record(2)); err != nil {
				t.Fatal(err)
			}
		}, 2, store.ChainDeleted},
		{"tail cut", func(t *testing.T, s *Store) {
			if _, err := cli.Delete(ctx, s.l.record(5)); err != nil {
				t.Fatal(err)
			}
		}, 5, store.ChainDeleted},
		{"inserted past the head", func(t *testing.T, s *Store) {
			r := record(t, s, 5)
			next := store.AuditRecord{Seq: 6, PrevHash: r.Hash, AuditEvent: ev("forged")}
			next.Hash = store.HashAuditRecord(next)
			put(t, s.l.record(6), next)
		}, 6, store.ChainInserted},
		{"stray key", func(t *testing.T, s *Store) {
			put(t, s.l.recordsDir()+"zz", "x")
		}, 6, store.ChainInserted},
		// The tree (tree.go): a leaf or node edited, the tree head
		// edited, records rewritten with their chain but not the tree.
		{"tree leaf edited", func(t *testing.T, s *Store) {
			kv, err := s.get(ctx, s.l.tree(3)) // record 3's own transaction
			if err != nil || kv == nil {
				t.Fatalf("tree key of record 3: %v", err)
			}
			v := bytes.Clone(kv.Value)
			v[1+8] ^= 1 // the first node's hash: leaf index 2
			if _, err := cli.Put(ctx, s.l.tree(3), string(v)); err != nil {
				t.Fatal(err)
			}
		}, 3, store.ChainTreeMismatch},
		{"tail cut, head moved back", func(t *testing.T, s *Store) {
			r := record(t, s, 4)
			if _, err := cli.Delete(ctx, s.l.record(5)); err != nil {
				t.Fatal(err)
			}
			kv, err := s.get(ctx, s.l.head())
			if err != nil {
				t.Fatal(err)
			}
			h, err := decodeHead(kv.Value)
			if err != nil {
				t.Fatal(err)
			}
			h.Seq, h.Hash = 4, r.Hash
			put(t, s.l.head(), h)
		}, 5, store.ChainDeleted},
		{"tree head edited", func(t *testing.T, s *Store) {
			kv, err := s.get(ctx, s.l.head())
			if err != nil {
				t.Fatal(err)
			}
			h, err := decodeHead(kv.Value)
			if err != nil {
				t.Fatal(err)
			}
			h.Tree[0][0] ^= 1
			put(t, s.l.head(), h)
		}, 5, store.ChainTreeMismatch},
		{"rewritten without the tree", func(t *testing.T, s *Store) {
			kv, err := s.get(ctx, s.l.head())
			if err != nil {
				t.Fatal(err)
			}
			h, err := decodeHead(kv.Value)
			if err != nil {
				t.Fatal(err)
			}
			prev := record(t, s, 3).Hash
			for seq := uint64(4); seq <= 5; seq++ {
				r := record(t, s, seq)
				if seq == 4 {
					r.Detail = "changed"
				}
				r.PrevHash = prev
				r.Hash = store.HashAuditRecord(r)
				prev = r.Hash
				put(t, s.l.record(seq), r)
			}
			h.Hash = prev
			put(t, s.l.head(), h)
		}, 4, store.ChainTreeMismatch},
	} {
		t.Run(tt.name, func(t *testing.T) {
			s := fill(t)
			tt.damage(t, s)
			var ce *store.ChainError
			if err := s.VerifyAudit(ctx); !errors.As(err, &ce) || ce.Seq != tt.seq || ce.Kind != tt.kind {
				t.Fatalf("VerifyAudit = %v, want %s at %d", err, tt.kind, tt.seq)
			}
		})
	}
	t.Run("append refuses to overwrite", func(t *testing.T) {
		s := fill(t)
		put(t, s.l.record(6), store.AuditRecord{Seq: 6})
		if _, err := s.AppendAudit(ctx, ev("verify")); !errors.Is(err, errdefs.ErrInternal) {
			t.Fatalf("AppendAudit over a record past the head: %v, want ErrInternal", err)
		}
	})
}

// TestWatchChanges: a change made through another store (replica) is
// reported; signatures are not.
func TestWatchChanges(t *testing.T) {
	c := etcdtest.Start(t, 1, etcdtest.Options{})
	prefix := newPrefix()
	a, b := openOn(t, newClient(t, c), prefix), openOn(t, newClient(t, c), prefix)
	ctx, cancel := context.WithCancel(context.Background())
	ch := a.WatchChanges(ctx)
	expect := func(what string, change func() error) {
		t.Helper()
		// Drain what came before (establishment, earlier changes).
		for drained := false; !drained; {
			select {
			case <-ch:
			case <-time.After(100 * time.Millisecond):
				drained = true
			}
		}
		if err := change(); err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		select {
		case <-ch:
			t.Logf("%s reported after %s", what, time.Since(start).Round(time.Millisecond))
		case <-time.After(30 * time.Second):
			t.Fatalf("%s was not reported", what)
		}
	}
	select {
	case <-ch:
	case <-time.After(30 * time.Second):
		t.Fatal("the watch was never established")
	}
	expect("CreateKey", func() error { return b.CreateKey(ctx, testKey("k"), ev("key.create")) })
	expect("TrustKey", func() error {
		return b.TrustKey(ctx, "acme", store.TrustedKey{Fingerprint: "fp", Algorithm: "ed25519", TrustedAt: t0}, ev("trust.add"))
	})
	expect("RevokeKeyVersions", func() error {
		_, err := b.RevokeKeyVersions(ctx, "k", store.ReasonKeyCompromise, t0, ev("key.revoke"))
		return err
	})
	expect("SetAuditKey", func() error { return b.SetAuditKey(ctx, testKey("audit"), ev("audit.key.create")) })
	cancel()
	for range ch {
	}
}

// TestOpenChecks: Open refuses a prefix it cannot serve.
func TestOpenChecks(t *testing.T) {
	c := etcdtest.Start(t, 1, etcdtest.Options{})
	cli := newClient(t, c)
	ctx := context.Background()
	open := func(prefix string, forImport bool) error {
		s, err := Open(ctx, Options{Client: cli, Prefix: prefix, ForImport: forImport})
		if err == nil {
			s.Close()
		}
		return err
	}
	foreign := newPrefix()
	if _, err := cli.Put(ctx, foreign+"something", "else"); err != nil {
		t.Fatal(err)
	}
	if err := open(foreign, false); !errors.Is(err, errdefs.ErrFailedPrecondition) {
		t.Fatalf("Open on a foreign prefix: %v", err)
	}
	newer := newPrefix()
	if _, err := cli.Put(ctx, newer+"meta/schema", "3"); err != nil {
		t.Fatal(err)
	}
	if err := open(newer, false); !errors.Is(err, errdefs.ErrFailedPrecondition) {
		t.Fatalf("Open on a newer layout: %v", err)
	}
	half := newPrefix()
	s, err := Open(ctx, Options{Client: cli, Prefix: half, ForImport: true})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.BeginImport(ctx); err != nil {
		t.Fatal(err)
	}
	s.Close()
	if err := open(half, false); !errors.Is(err, errdefs.ErrFailedPrecondition) {
		t.Fatalf("Open on an unfinished import: %v", err)
	}
	if err := open(half, true); err != nil {
		t.Fatalf("Open for import on an unfinished import: %v", err)
	}
	if _, err := Open(ctx, Options{Endpoints: []string{"http://127.0.0.1:1"}, DialTimeout: 300 * time.Millisecond}); !errors.Is(err, errdefs.ErrUnavailable) {
		t.Fatalf("Open on nothing: %v, want ErrUnavailable", err)
	}
}
