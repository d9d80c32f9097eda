package etcdstore

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/signerd/signerd/internal/errdefs"
	"github.com/signerd/signerd/internal/store"
	"github.com/signerd/signerd/internal/testutil/etcdtest"
)

// faultKV loses the response of the next write transaction (one with
// compares; reads are answered) once armed: the
// transaction is applied by etcd, its answer replaced by an error (a
// leader change or a timeout after the proposal went through).
type faultKV struct {
	clientv3.KV
	loseNext atomic.Bool
	// delayUntil, once set, holds back the next transaction (answered
	// with an error as if its answer were lost) until the first read of
	// that etcd key, just before which it is applied: a proposal that
	// etcd applies late, after the writer has read the head again.
	delayUntil atomic.Pointer[string]
	delayed    atomic.Pointer[clientv3.Txn]
	// dropNext, once set, is run instead of the next transaction, which
	// is answered with an error and never applied.
	dropNext atomic.Pointer[func()]
	// afterLate, once set, is run just after the transaction held back
	// by delayUntil is applied.
	afterLate atomic.Pointer[func()]
	// beforeWrite, once set, is run just before the next transaction
	// that has compares (a write, not a read) is sent.
	beforeWrite atomic.Pointer[func()]
}

func (f *faultKV) Get(ctx context.Context, key string, opts ...clientv3.OpOption) (*clientv3.GetResponse, error) {
	if k := f.delayUntil.Load(); k != nil && *k == key {
		if txn := f.delayed.Swap(nil); txn != nil {
			f.delayUntil.Store(nil)
			if _, err := (*txn).Commit(); err != nil {
				return nil, err
			}
			if f := f.afterLate.Swap(nil); f != nil {
				(*f)()
			}
		}
	}
	return f.KV.Get(ctx, key, opts...)
}

func (f *faultKV) Txn(ctx context.Context) clientv3.Txn {
	return &faultTxn{Txn: f.KV.Txn(ctx), f: f}
}

type faultTxn struct {
	clientv3.Txn
	f     *faultKV
	write bool
}

func (t *faultTxn) If(c ...clientv3.Cmp) clientv3.Txn {
	t.Txn, t.write = t.Txn.If(c...), len(c) > 0
	return t
}
func (t *faultTxn) Then(o ...clientv3.Op) clientv3.Txn { t.Txn = t.Txn.Then(o...); return t }
func (t *faultTxn) Else(o ...clientv3.Op) clientv3.Txn { t.Txn = t.Txn.Else(o...); return t }
func (t *faultTxn) Commit() (*clientv3.TxnResponse, error) {
	if !t.write {
		// Reads (getMany's) are never faulted: the faults are a write's.
		return t.Txn.Commit()
	}
	if f := t.f.beforeWrite.Swap(nil); f != nil {
		(*f)()
	}
	if f := t.f.dropNext.Swap(nil); f != nil {
		(*f)()
		return nil, status.Error(codes.Unavailable, "injected: proposal lost")
	}
	if t.f.delayUntil.Load() != nil && t.f.delayed.CompareAndSwap(nil, &t.Txn) {
		return nil, status.Error(codes.Unavailable, "injected: proposal applied late")
	}
	resp, err := t.Txn.Commit()
	if err == nil && t.f.loseNext.CompareAndSwap(true, false) {
		return nil, status.Error(codes.Unavailable, "injected: response lost")
	}
	return resp, err
}

// TestRevokeThenLostResponse: the committer's guard of k is stale (the
// revoke went through this replica, which moved the head but not the
// guard); the next batch of k is refused by etcd, its answer lost. That
// attempt can never commit (its compare names k's old revision): once the
// retry's Else shows k moved, resolve drops it and the write is refused
// KEY_REVOKED at once. Before, the committer waited for the head to pass
// the attempt, which nobody did, and answered UNAVAILABLE at the write
// timeout.
func TestRevokeThenLostResponse(t *testing.T) {
	c := etcdtest.Start(t, 1, etcdtest.Options{})
	s, fkv := openFaulty(t, c, newPrefix())
	ctx := context.Background()
	if err := s.CreateKey(ctx, testKey("k"), ev("key.create")); err != nil {
		t.Fatal(err)
	}
	if err := s.PutSignature(ctx, sigRecord(1), ev("sign")); err != nil {
		t.Fatal(err)
	}
	if _, err := s.RevokeKeyVersions(ctx, "k", store.ReasonKeyCompromise, t0, ev("key.revoke")); err != nil {
		t.Fatal(err)
	}
	fkv.loseNext.Store(true)
	start := time.Now()
	err := s.PutSignature(ctx, sigRecord(2), ev("sign"))
	t.Logf("after %v: %v", time.Since(start), err)
	if !errors.Is(err, errdefs.ErrFailedPrecondition) || errdefs.ReasonOf(err) != errdefs.ReasonKeyRevoked {
		t.Fatalf("PutSignature after the revocation: %v, want KEY_REVOKED", err)
	}
}

// TestRevokeOnAnotherReplicaThenLostResponse: as above, the revocation
// made by replica a; b's head catches up through a write of another kind
// (its guard of k does not).
func TestRevokeOnAnotherReplicaThenLostResponse(t *testing.T) {
	c := etcdtest.Start(t, 1, etcdtest.Options{})
	prefix := newPrefix()
	a := openOn(t, newClient(t, c), prefix)
	b, fkv := openFaulty(t, c, prefix)
	ctx := context.Background()
	if err := a.CreateKey(ctx, testKey("k"), ev("key.create")); err != nil {
		t.Fatal(err)
	}
	if err := b.PutSignature(ctx, sigRecord(1), ev("sign")); err != nil {
		t.Fatal(err)
	}
	if _, err := a.RevokeKeyVersions(ctx, "k", store.ReasonKeyCompromise, t0, ev("key.revoke")); err != nil {
		t.Fatal(err)
	}
	if _, err := b.AppendAudit(ctx, ev("other")); err != nil { // b's head is current again
		t.Fatal(err)
	}
	fkv.loseNext.Store(true)
	start := time.Now()
	err := b.PutSignature(ctx, sigRecord(2), ev("sign"))
	t.Logf("after %v: %v", time.Since(start), err)
	if !errors.Is(err, errdefs.ErrFailedPrecondition) || errdefs.ReasonOf(err) != errdefs.ReasonKeyRevoked {
		t.Fatalf("PutSignature after the revocation: %v, want KEY_REVOKED", err)
	}
}

// openFaulty opens a store on prefix whose client can lose one
// transaction's answer (faultKV), with a write timeout short enough that
// a stall shows.
func openFaulty(t *testing.T, c *etcdtest.Cluster, prefix string) (*Store, *faultKV) {
	t.Helper()
	cli := newClient(t, c)
	fkv := &faultKV{KV: cli.KV}
	cli.KV = fkv
	s, err := Open(context.Background(), Options{Client: cli, Prefix: prefix, WriteTimeout: 3 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s, fkv
}

// TestExclusiveWriteAppliedLate: a revocation whose first attempt etcd
// applies only after the committer read the head again (so resolving
// found it not committed yet) meets its own change when it prepares again:
// the key is already revoked. The committer reads the head once more
// before answering a refusal while an attempt is pending, finds the
// attempt committed, and answers success. Before, the caller was told
// "already revoked" for the revocation it had just made.
func TestExclusiveWriteAppliedLate(t *testing.T) {
	c := etcdtest.Start(t, 1, etcdtest.Options{})
	s, fkv := openFaulty(t, c, newPrefix())
	ctx := context.Background()
	if err := s.CreateKey(ctx, testKey("k"), ev("key.create")); err != nil {
		t.Fatal(err)
	}
	key := s.l.key("k")
	fkv.delayUntil.Store(&key)
	if _, err := s.RevokeKeyVersions(ctx, "k", store.ReasonSuperseded, t0, ev("key.revoke")); err != nil {
		t.Fatalf("RevokeKeyVersions applied late: %v, want success", err)
	}
	if fkv.delayed.Load() != nil {
		t.Fatal("the delayed transaction was never applied: the test did not test the race")
	}
	recs, err := s.ListAudit(ctx, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	if n := len(recs); n != 2 || recs[1].Operation != "key.revoke" {
		t.Fatalf("audit log has %d records, want key.create and one key.revoke", n)
	}
	// Revoking again is refused, at once.
	start := time.Now()
	_, err = s.RevokeKeyVersions(ctx, "k", store.ReasonSuperseded, t0, ev("key.revoke"))
	if !errors.Is(err, errdefs.ErrFailedPrecondition) {
		t.Fatalf("revoking a revoked key: %v, want FailedPrecondition", err)
	}
	t.Logf("refused after %v", time.Since(start))
}

// TestExclusiveRefusalWithLostAttempt: a write whose attempt was lost (never
// applied) and whose key was then changed outside signerd, so that it is
// refused on preparing again while the attempt is still pending: the
// refusal is answered once a fresh read of the head shows the attempt had
// not committed, not held until the write timeout.
func TestExclusiveRefusalWithLostAttempt(t *testing.T) {
	c := etcdtest.Start(t, 1, etcdtest.Options{})
	s, fkv := openFaulty(t, c, newPrefix())
	ctx := context.Background()
	if err := s.CreateKey(ctx, testKey("k"), ev("key.create")); err != nil {
		t.Fatal(err)
	}
	outside := func() {
		k, err := s.GetKey(ctx, "k")
		if err != nil {
			t.Error(err)
			return
		}
		edit, _ := store.EditRevokeKey("k", store.ReasonKeyCompromise, t0)
		if _, err := edit(&k); err != nil {
			t.Error(err)
			return
		}
		raw, _ := encode(k)
		if _, err := fkv.KV.Put(ctx, s.l.key("k"), raw); err != nil {
			t.Error(err)
		}
	}
	fkv.dropNext.Store(&outside)
	start := time.Now()
	_, err := s.RevokeKeyVersions(ctx, "k", store.ReasonSuperseded, t0, ev("key.revoke"))
	took := time.Since(start)
	// Held until the write timeout, it would be UNAVAILABLE ("outcome
	// unknown").
	if !errors.Is(err, errdefs.ErrFailedPrecondition) {
		t.Fatalf("revoking a key revoked outside signerd, the first attempt lost: %v, want FailedPrecondition", err)
	}
	t.Logf("refused after %v: %v", took, err)
}
