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

// faultKV loses the response of the next transaction once armed: the
// transaction is applied by etcd, its answer replaced by an error (a
// leader change or a timeout after the proposal went through).
type faultKV struct {
	clientv3.KV
	loseNext atomic.Bool
}

func (f *faultKV) Txn(ctx context.Context) clientv3.Txn {
	return &faultTxn{Txn: f.KV.Txn(ctx), f: f}
}

type faultTxn struct {
	clientv3.Txn
	f *faultKV
}

func (t *faultTxn) If(c ...clientv3.Cmp) clientv3.Txn  { t.Txn = t.Txn.If(c...); return t }
func (t *faultTxn) Then(o ...clientv3.Op) clientv3.Txn { t.Txn = t.Txn.Then(o...); return t }
func (t *faultTxn) Else(o ...clientv3.Op) clientv3.Txn { t.Txn = t.Txn.Else(o...); return t }
func (t *faultTxn) Commit() (*clientv3.TxnResponse, error) {
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
	if err := s.RevokeKeyVersions(ctx, "k", store.ReasonKeyCompromise, t0, ev("key.revoke")); err != nil {
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
	if err := a.RevokeKeyVersions(ctx, "k", store.ReasonKeyCompromise, t0, ev("key.revoke")); err != nil {
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
