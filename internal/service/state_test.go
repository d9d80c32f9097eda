package service

import (
	"bytes"
	"testing"

	"github.com/signerd/signerd/internal/auditlog"
	"github.com/signerd/signerd/internal/keystore"
	"github.com/signerd/signerd/internal/store"
)

// TestStateBaselineOfAnOldDatabase: a database whose checkpoints predate
// state digests (encoding v1) keeps verifying; at the next start the state
// is recorded (audit.state.baseline) and checkpointed, after which the log
// vouches for it and a restart has nothing to add.
func TestStateBaselineOfAnOldDatabase(t *testing.T) {
	f := newFixture(t)
	if _, err := f.svc.EnsureAuditKey(f.ctx); err != nil {
		t.Fatal(err)
	}
	f.createKey(t, "release", keystore.Ed25519)
	f.trust(t, "acme", "release")
	// A checkpoint as signerd signed them before state digests.
	_, ver, signer, pub, err := f.svc.auditKey()
	if err != nil {
		t.Fatal(err)
	}
	seq, hash, err := f.st.AuditHead(f.ctx)
	if err != nil {
		t.Fatal(err)
	}
	old, err := auditlog.SignCheckpoint(signer, store.Checkpoint{Seq: seq, Hash: hash, Time: f.svc.now(), KeyFingerprint: ver.Fingerprint})
	if err != nil {
		t.Fatal(err)
	}
	if err := f.st.PutCheckpoint(f.ctx, old); err != nil {
		t.Fatal(err)
	}
	if _, err := auditlog.Verify(f.ctx, f.st, pub); err != nil {
		t.Fatalf("the old database: %v", err)
	}

	start := func() StateCheck {
		t.Helper()
		svc := New(f.st, f.keys, Options{})
		if _, err := svc.EnsureAuditKey(f.ctx); err != nil {
			t.Fatal(err)
		}
		chk, err := svc.VerifyStateAtStart(f.ctx, "")
		if err != nil {
			t.Fatalf("VerifyStateAtStart: %v", err)
		}
		return chk
	}
	if chk := start(); !chk.Baseline || chk.Accepted {
		t.Fatalf("first start on the old database: %+v, want a baseline", chk)
	}
	recs, _ := f.st.ListAudit(f.ctx, seq, 0)
	if len(recs) != 1 || recs[0].Operation != store.OpStateBaseline || recs[0].Caller != daemonCaller {
		t.Fatalf("records after the old checkpoint: %+v, want one %s", recs, store.OpStateBaseline)
	}
	cps, _ := f.st.ListCheckpoints(f.ctx)
	want, _ := store.StateDigest(f.ctx, f.st)
	if len(cps) != 2 || len(cps[0].StateDigest) != 0 || !bytes.Equal(cps[1].StateDigest, want) || cps[1].Seq != recs[0].Seq {
		t.Fatalf("checkpoints %+v, want the old one and one vouching for the state after the baseline", cps)
	}
	rep, err := auditlog.Verify(f.ctx, f.st, pub)
	if err != nil || rep.State == nil || !rep.State.Matches() {
		t.Fatalf("Verify after the baseline: %+v, %v", rep.State, err)
	}
	if chk := start(); chk.Baseline || chk.Accepted || !chk.Matches() {
		t.Fatalf("second start: %+v, want nothing to do", chk)
	}
	if n, _, _ := f.st.AuditHead(f.ctx); n != recs[0].Seq {
		t.Fatalf("a restart on a vouched state appended records (head %d, was %d)", n, recs[0].Seq)
	}

	// A recorded change after the newest checkpoint (a crash before the
	// next one) is vouched for at the next start, not refused.
	f.trust(t, "other", "release")
	if chk := start(); chk.Baseline || chk.Accepted || chk.ChangesAfter != 1 {
		t.Fatalf("start after a recorded change: %+v", chk)
	}
	if _, err := auditlog.Verify(f.ctx, f.st, pub); err != nil {
		t.Fatalf("Verify after the recorded change: %v", err)
	}
	// A stray --accept-state on a vouched state accepts nothing and
	// records nothing.
	svc := New(f.st, f.keys, Options{})
	if _, err := svc.EnsureAuditKey(f.ctx); err != nil {
		t.Fatal(err)
	}
	head, _, _ := f.st.AuditHead(f.ctx)
	if chk, err := svc.VerifyStateAtStart(f.ctx, "not-a-digest"); err != nil || chk.Accepted {
		t.Fatalf("VerifyStateAtStart with a vouched state and a stray --accept-state: %+v, %v", chk, err)
	}
	if n, _, _ := f.st.AuditHead(f.ctx); n != head {
		t.Fatal("a stray --accept-state appended records")
	}
}
