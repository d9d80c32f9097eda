package etcdstore

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.etcd.io/etcd/api/v3/etcdserverpb"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/signerd/signerd/internal/store"
	"github.com/signerd/signerd/internal/testutil/etcdtest"
)

// countingKV counts the requests a store sends to etcd's key-value API.
type countingKV struct {
	clientv3.KV
	n atomic.Int64
}

func (c *countingKV) Get(ctx context.Context, key string, opts ...clientv3.OpOption) (*clientv3.GetResponse, error) {
	c.n.Add(1)
	return c.KV.Get(ctx, key, opts...)
}

func (c *countingKV) Txn(ctx context.Context) clientv3.Txn {
	c.n.Add(1)
	return c.KV.Txn(ctx)
}

// grantMany has parent trust fp and grant trust to n children that each
// trust it too, returning the children in order.
func grantMany(t *testing.T, s *Store, parent string, tk store.TrustedKey, n int) []string {
	t.Helper()
	ctx := context.Background()
	if err := s.TrustKey(ctx, parent, tk, ev("trust.add")); err != nil {
		t.Fatal(err)
	}
	var children []string
	for i := range n {
		c := fmt.Sprintf("child-%04d.example", i)
		children = append(children, c)
		if err := s.TrustKey(ctx, c, tk, ev("trust.add")); err != nil {
			t.Fatal(err)
		}
		if err := s.GrantTrust(ctx, parent, c, t0, ev("trust.grant")); err != nil {
			t.Fatal(err)
		}
	}
	return children
}

func trustedKey(name string) store.TrustedKey {
	v := testKey(name).Versions[0]
	return store.TrustedKey{Fingerprint: v.Fingerprint, Algorithm: "ed25519", PublicKey: v.PublicKey, KeyName: name, TrustedAt: t0}
}

// faultyPair opens two replicas on one new prefix of a one-member
// cluster: a, whose client can be faulted (faultKV), and b.
func faultyPair(t *testing.T) (a *Store, fkv *faultKV, b *Store) {
	t.Helper()
	c := etcdtest.Start(t, 1, etcdtest.Options{})
	prefix := newPrefix()
	a, fkv = openFaulty(t, c, prefix)
	return a, fkv, openOn(t, newClient(t, c), prefix)
}

// pair opens two replicas on one new prefix of a one-member cluster.
func pair(t *testing.T) (a, b *Store) {
	t.Helper()
	c := etcdtest.Start(t, 1, etcdtest.Options{})
	prefix := newPrefix()
	return openOn(t, newClient(t, c), prefix), openOn(t, newClient(t, c), prefix)
}

// busy runs write(i) for i = 0, 1, … back to back until the returned stop
// is called (which waits for it), once it has run three times; done
// counts the writes.
func busy(t *testing.T, what string, write func(i int) error) (stop func(), done *atomic.Int64) {
	t.Helper()
	quit := make(chan struct{})
	var wg sync.WaitGroup
	done = new(atomic.Int64)
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; ; i++ {
			select {
			case <-quit:
				return
			default:
			}
			if err := write(i); err != nil {
				t.Errorf("%s: %v", what, err)
				return
			}
			done.Add(1)
		}
	}()
	waitFor(t, what, func() bool { return done.Load() >= 3 })
	return func() { close(quit); wg.Wait() }, done
}

// lastDetail is the detail of the newest audit record.
func lastDetail(t *testing.T, s *Store) string {
	t.Helper()
	recs, err := s.ListAudit(context.Background(), 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	return recs[len(recs)-1].Detail
}

// TestRemoveTrustReadsChildrenTogether: a trust removal reads the org's
// children in a round trip per hundred, not one each. Its prepare runs
// while the audit head must stay unmoved, so a read per child made a
// removal from an org with some thousands of grants outlast the attempt,
// and one with hundreds fail whenever another replica kept appending; it
// held every other write of the replica back meanwhile.
func TestRemoveTrustReadsChildrenTogether(t *testing.T) {
	c := etcdtest.Start(t, 1, etcdtest.Options{})
	cli := newClient(t, c)
	kv := &countingKV{KV: cli.KV}
	cli.KV = kv
	s := openOn(t, cli, newPrefix())
	ctx := context.Background()

	removal := func(parent string, grants int) int64 {
		tk := trustedKey(parent)
		grantMany(t, s, parent, tk, grants)
		before := kv.n.Load()
		via, err := s.RemoveTrust(ctx, parent, tk.Fingerprint, t0, ev("trust.remove"))
		if err != nil {
			t.Fatalf("RemoveTrust from %s with %d grants: %v", parent, grants, err)
		}
		if len(via) != grants {
			t.Fatalf("RemoveTrust from %s: still trusted via %d grants, want %d", parent, len(via), grants)
		}
		return kv.n.Load() - before
	}
	alone := removal("alone.example", 0)
	many := removal("many.example", 350)
	// 350 children: four reads of up to a hundred.
	if many > alone+4 {
		t.Fatalf("removal with 350 grants sent %d etcd requests, without grants %d: want at most 4 more", many, alone)
	}
}

// TestRemoveTrustWhileAnotherReplicaAppends: the removal from an org with
// hundreds of grants commits while another replica appends without pause.
func TestRemoveTrustWhileAnotherReplicaAppends(t *testing.T) {
	a, b := pair(t)
	ctx := context.Background()
	tk := trustedKey("parent.example")
	grantMany(t, a, "parent.example", tk, 300)

	// The other replica is appending before the removal starts.
	stop, appended := busy(t, "AppendAudit on the other replica", func(int) error {
		_, err := b.AppendAudit(ctx, ev("busy"))
		return err
	})
	before, start := a.Contention(), time.Now()
	via, err := a.RemoveTrust(ctx, "parent.example", tk.Fingerprint, t0, ev("trust.remove"))
	took := time.Since(start)
	stop()
	after := a.Contention()
	t.Logf("removal: %d transactions, %d conflicts, %s; the other replica appended %d records",
		after.Txns-before.Txns, after.Conflicts-before.Conflicts, took.Round(time.Millisecond), appended.Load())
	if err != nil {
		t.Fatalf("RemoveTrust while another replica appends: %v", err)
	}
	if len(via) != 300 {
		t.Fatalf("still trusted via %d grants, want 300", len(via))
	}
}

// TestExclusiveWritePreparedAgainWhenItsKeysChange: an exclusive write
// whose transaction lost to another replica's append is sent again as
// prepared, so long as what it read is unchanged; when the other replica
// changed that too, the transaction is refused and the write prepared
// again from what is there now. Here another replica grants the org trust
// to a second child between the removal's prepare and its transaction:
// the removal must name both children, not the one it first read.
func TestExclusiveWritePreparedAgainWhenItsKeysChange(t *testing.T) {
	a, fkv, b := faultyPair(t)
	ctx := context.Background()
	tk := trustedKey("parent.example")
	first := grantMany(t, a, "parent.example", tk, 1)[0]
	second := "second.example"
	if err := a.TrustKey(ctx, second, tk, ev("trust.add")); err != nil {
		t.Fatal(err)
	}

	var grantErr error
	grant := func() { grantErr = b.GrantTrust(ctx, "parent.example", second, t0, ev("trust.grant")) }
	fkv.beforeWrite.Store(&grant)
	before := a.Contention()
	via, err := a.RemoveTrust(ctx, "parent.example", tk.Fingerprint, t0, ev("trust.remove"))
	if err != nil || grantErr != nil {
		t.Fatalf("RemoveTrust: %v; the other replica's grant: %v", err, grantErr)
	}
	if want := []string{first, second}; !slices.Equal(via, want) {
		t.Fatalf("still trusted via %q, want %q (prepared from what the org holds at the commit)", via, want)
	}
	if got := a.Contention(); got.Conflicts-before.Conflicts != 1 || got.Refused-before.Refused != 1 || got.Commits-before.Commits != 1 {
		t.Fatalf("counters went from %+v to %+v: want one conflict (the head), one refusal (the org, as prepared) and a commit", before, got)
	}
	o, err := a.GetOrg(ctx, "parent.example")
	if err != nil {
		t.Fatal(err)
	}
	if o.TrustsActively(tk.Fingerprint) || len(store.ActiveGrants(o)) != 2 {
		t.Fatalf("parent after the removal and the grant: %+v", o)
	}
	if d := lastDetail(t, a); d != "still_trusted_via="+first+","+second {
		t.Fatalf("removal audited with detail %q", d)
	}
}

// TestRemoveTrustSeesChildTrustChange: a child org that comes to trust the
// key between the removal's read and its commit (through another replica)
// is named, with few grants (each child compared) and with more than one
// transaction can compare (the orgs' range compared). Before, past 100
// grants the child was not compared, and the removal answered and audited
// that no grant carried the key.
func TestRemoveTrustSeesChildTrustChange(t *testing.T) {
	for _, grants := range []int{5, maxComparedKeys + 20} {
		t.Run(fmt.Sprint(grants), func(t *testing.T) {
			a, fkv, b := faultyPair(t)
			ctx := context.Background()
			tk := trustedKey("parent.example")
			if err := a.TrustKey(ctx, "parent.example", tk, ev("trust.add")); err != nil {
				t.Fatal(err)
			}
			for i := range grants {
				if err := a.GrantTrust(ctx, "parent.example", fmt.Sprintf("child-%04d.example", i), t0, ev("trust.grant")); err != nil {
					t.Fatal(err)
				}
			}
			last := fmt.Sprintf("child-%04d.example", grants-1)
			var trustErr error
			trust := func() { trustErr = b.TrustKey(ctx, last, tk, ev("trust.add")) }
			fkv.beforeWrite.Store(&trust)
			via, err := a.RemoveTrust(ctx, "parent.example", tk.Fingerprint, t0, ev("trust.remove"))
			if err != nil || trustErr != nil {
				t.Fatalf("RemoveTrust: %v; the child's trust through the other replica: %v", err, trustErr)
			}
			if !slices.Equal(via, []string{last}) {
				t.Fatalf("still trusted via %q, want [%s]", via, last)
			}
			if d := lastDetail(t, a); d != "still_trusted_via="+last {
				t.Fatalf("removal audited with detail %q", d)
			}
		})
	}
}

// TestRemoveTrustAnswerOfTheCommittedAttempt: a removal whose first
// attempt etcd applies late (after the writer found it not committed),
// after which a child comes to trust the key, is prepared again, refused
// (the trust is gone), and answered as committed from the log: with the
// grants the committed attempt named, not those of the refused
// preparation.
func TestRemoveTrustAnswerOfTheCommittedAttempt(t *testing.T) {
	a, fkv, b := faultyPair(t)
	ctx := context.Background()
	tk := trustedKey("parent.example")
	first := grantMany(t, a, "parent.example", tk, 1)[0]
	if err := a.GrantTrust(ctx, "parent.example", "late.example", t0, ev("trust.grant")); err != nil {
		t.Fatal(err)
	}
	var trustErr error
	trust := func() { trustErr = b.TrustKey(ctx, "late.example", tk, ev("trust.add")) }
	fkv.afterLate.Store(&trust)
	parent := a.l.org("parent.example")
	fkv.delayUntil.Store(&parent)
	via, err := a.RemoveTrust(ctx, "parent.example", tk.Fingerprint, t0, ev("trust.remove"))
	if err != nil || trustErr != nil {
		t.Fatalf("RemoveTrust: %v; the late child's trust: %v", err, trustErr)
	}
	if !slices.Equal(via, []string{first}) {
		t.Fatalf("still trusted via %q, want [%s]: the committed attempt's", via, first)
	}
	if got := a.Contention(); got.Unknown != 1 {
		t.Fatalf("counters %+v: want the one attempt answered late", got)
	}
}

// compactingKV compacts the store's etcd past the revision of the next
// read transaction, once armed, just after it is answered.
type compactingKV struct {
	clientv3.KV
	cli   *clientv3.Client
	armed atomic.Bool
}

func (c *compactingKV) Txn(ctx context.Context) clientv3.Txn {
	return &compactingTxn{Txn: c.KV.Txn(ctx), c: c, ctx: ctx}
}

type compactingTxn struct {
	clientv3.Txn
	c   *compactingKV
	ctx context.Context
}

func (t *compactingTxn) If(c ...clientv3.Cmp) clientv3.Txn  { t.Txn = t.Txn.If(c...); return t }
func (t *compactingTxn) Then(o ...clientv3.Op) clientv3.Txn { t.Txn = t.Txn.Then(o...); return t }
func (t *compactingTxn) Else(o ...clientv3.Op) clientv3.Txn { t.Txn = t.Txn.Else(o...); return t }
func (t *compactingTxn) Commit() (*clientv3.TxnResponse, error) {
	resp, err := t.Txn.Commit()
	if err == nil && t.c.armed.CompareAndSwap(true, false) {
		put, perr := t.c.KV.Put(t.ctx, "/compaction-marker", "x")
		if perr != nil {
			return nil, perr
		}
		if _, cerr := t.c.cli.Compact(t.ctx, put.Header.Revision); cerr != nil {
			return nil, cerr
		}
	}
	return resp, err
}

// TestGetManyStartsOverWhenCompacted: a read of more keys than one round
// trip holds, whose revision is compacted between its round trips, is
// read again from the start rather than failing (before, the compaction
// error reached the write as INTERNAL).
func TestGetManyStartsOverWhenCompacted(t *testing.T) {
	c := etcdtest.Start(t, 1, etcdtest.Options{})
	cli := newClient(t, c)
	kv := &compactingKV{KV: cli.KV, cli: cli}
	cli.KV = kv
	s := openOn(t, cli, newPrefix())
	ctx := context.Background()
	var keys []string
	for i := range maxTxnReads + 10 {
		k := s.l.org(fmt.Sprintf("org-%03d.example", i))
		keys = append(keys, k)
		if i%2 == 0 {
			if _, err := kv.KV.Put(ctx, k, fmt.Sprint(i)); err != nil {
				t.Fatal(err)
			}
		}
	}
	kv.armed.Store(true)
	got, rev, err := s.getManyAt(ctx, keys...)
	if err != nil {
		t.Fatalf("getManyAt with its revision compacted: %v", err)
	}
	if kv.armed.Load() || rev == 0 || len(got) != len(keys) {
		t.Fatalf("compaction armed %v, revision %d, %d values for %d keys", kv.armed.Load(), rev, len(got), len(keys))
	}
	for i, v := range got {
		if (v != nil) != (i%2 == 0) || (v != nil && string(v.Value) != fmt.Sprint(i)) {
			t.Fatalf("key %d read as %v", i, v)
		}
	}
}

func TestUnchangedSince(t *testing.T) {
	keys := func(n int) []string {
		var ks []string
		for i := range n {
			ks = append(ks, fmt.Sprintf("/o/%04d", (i*7919)%n)) // unsorted
		}
		return ks
	}
	for _, tt := range []struct {
		keys, max, want int
	}{
		{0, 100, 0}, {1, 100, 1}, {100, 100, 100}, {101, 100, 51}, {250, 100, 84}, {1000, 100, 100}, {1001, 100, 91},
	} {
		cmps := unchangedSince(keys(tt.keys), 42, tt.max)
		if len(cmps) != tt.want {
			t.Errorf("%d keys, at most %d compares: %d compares, want %d", tt.keys, tt.max, len(cmps), tt.want)
		}
		// The runs cover every key, in order, each once.
		covered := 0
		prevEnd := ""
		for _, c := range cmps {
			pc := c.GetCompare()
			first, end := string(pc.Key), string(pc.RangeEnd)
			if first < prevEnd || pc.Result != etcdserverpb.Compare_LESS || pc.GetModRevision() != 43 {
				t.Fatalf("%d keys: compare %q..%q after %q, %+v", tt.keys, first, end, prevEnd, c)
			}
			for _, k := range keys(tt.keys) {
				if k >= first && k < end {
					covered++
				}
			}
			prevEnd = end
		}
		if covered != tt.keys {
			t.Errorf("%d keys: %d covered by the runs", tt.keys, covered)
		}
	}
}

// TestRemoveTrustWhileOtherOrgsChange: a removal from an org with more
// grants than are compared one by one commits while another replica
// changes other orgs back to back, and their changes never fail its
// compares. Before, one compare over every org failed at each of their
// changes (a review saw the removal time out with 2 ms more latency).
func TestRemoveTrustWhileOtherOrgsChange(t *testing.T) {
	a, b := pair(t)
	ctx := context.Background()
	tk := trustedKey("parent.example")
	grantMany(t, a, "parent.example", tk, 2*maxComparedKeys)

	stop, changed := busy(t, "TrustKey on the other replica", func(i int) error {
		// Names that sort after every child ("zz-" > "child-").
		return b.TrustKey(ctx, fmt.Sprintf("zz-other-%05d.example", i), tk, ev("trust.add"))
	})
	before := a.Contention()
	via, err := a.RemoveTrust(ctx, "parent.example", tk.Fingerprint, t0, ev("trust.remove"))
	stop()
	after := a.Contention()
	t.Logf("removal: %d transactions, %d conflicts, %d refused; the other replica changed %d orgs",
		after.Txns-before.Txns, after.Conflicts-before.Conflicts, after.Refused-before.Refused, changed.Load())
	if err != nil {
		t.Fatalf("RemoveTrust while other orgs change: %v", err)
	}
	if len(via) != 2*maxComparedKeys {
		t.Fatalf("still trusted via %d grants, want %d", len(via), 2*maxComparedKeys)
	}
	// The other orgs sort outside the children's runs: their changes
	// never fail the removal's compares (only the head moving does).
	if r := after.Refused - before.Refused; r != 0 {
		t.Fatalf("the removal was refused %d times by changes to orgs it did not read", r)
	}
}
