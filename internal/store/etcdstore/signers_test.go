package etcdstore

import (
	"context"
	"errors"
	"testing"

	"github.com/signerd/signerd/internal/errdefs"
	"github.com/signerd/signerd/internal/store"
	"github.com/signerd/signerd/internal/testutil/etcdtest"
)

// TestRevokeOnAnotherReplica: replica b has recorded a signature of key
// k, so its committer holds k's record as it was then; replica a revokes
// k. b's next record of k is refused (its batch's compare on k's record
// fails, and the refreshed record says revoked), and the log ends with
// the revocation.
func TestRevokeOnAnotherReplica(t *testing.T) {
	c := etcdtest.Start(t, 1, etcdtest.Options{})
	prefix := newPrefix()
	a, b := openOn(t, newClient(t, c), prefix), openOn(t, newClient(t, c), prefix)
	ctx := context.Background()

	if err := a.CreateKey(ctx, testKey("k"), ev("key.create")); err != nil {
		t.Fatal(err)
	}
	first := sigRecord(1)
	if err := b.PutSignature(ctx, first, ev("sign")); err != nil {
		t.Fatalf("PutSignature before the revocation: %v", err)
	}
	if _, err := a.RevokeKeyVersions(ctx, "k", store.ReasonKeyCompromise, t0, ev("key.revoke")); err != nil {
		t.Fatal(err)
	}
	refusedBefore := b.cont.refused.Load()
	second := sigRecord(2)
	err := b.PutSignature(ctx, second, ev("sign"))
	if !errors.Is(err, errdefs.ErrFailedPrecondition) || errdefs.ReasonOf(err) != errdefs.ReasonKeyRevoked {
		t.Fatalf("PutSignature after the revocation on the other replica: %v, want KEY_REVOKED", err)
	}
	if n := b.cont.refused.Load() - refusedBefore; n != 0 {
		t.Fatalf("%d transactions counted as refused (damage or foreign writes); a changed key is neither", n)
	}
	recs, err := b.ListAudit(ctx, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	if last := recs[len(recs)-1]; last.Operation != "key.revoke" {
		t.Fatalf("last audit record is %q (seq %d), want the key.revoke", last.Operation, last.Seq)
	}
	got, err := b.SignaturesByDigest(ctx, second.Digest)
	if err != nil || len(got) != 0 {
		t.Fatalf("records of the refused signature: %d, %v", len(got), err)
	}
}
