package storetest

import (
	"bytes"
	"context"
	"testing"

	"github.com/signerd/signerd/internal/errdefs"
	"github.com/signerd/signerd/internal/store"
)

// testAuditHeadVerifyAudit checks the head and the whole-chain check on an
// intact log (damage is backend-specific: boltstore tests it on the file).
func testAuditHeadVerifyAudit(t *testing.T, s store.Store) {
	ctx := context.Background()
	seq, hash, err := s.AuditHead(ctx)
	must(t, "AuditHead empty", err)
	if seq != 0 || !bytes.Equal(hash, store.GenesisHash()) {
		t.Fatalf("AuditHead of an empty log = %d %x, want 0 and the genesis hash", seq, hash)
	}
	must(t, "VerifyAudit empty", s.VerifyAudit(ctx))
	var last store.AuditRecord
	for i := 0; i < 5; i++ {
		last, err = s.AppendAudit(ctx, ev("verify"))
		must(t, "AppendAudit", err)
	}
	seq, hash, err = s.AuditHead(ctx)
	must(t, "AuditHead", err)
	if seq != last.Seq || !bytes.Equal(hash, last.Hash) {
		t.Fatalf("AuditHead = %d %x, want the last record %d %x", seq, hash, last.Seq, last.Hash)
	}
	must(t, "VerifyAudit", s.VerifyAudit(ctx))
}

// auditKey is an audit key record as the service writes it.
func auditKey() store.Key {
	k := newKey("signerd-audit")
	k.Org, k.Algorithm = "", "ecdsa-p256"
	return k
}

func testAuditKey(t *testing.T, s store.Store) {
	ctx := context.Background()
	_, err := s.AuditKey(ctx)
	checkErr(t, "AuditKey of a new store", err, errdefs.ErrNotFound)

	k := auditKey()
	e := ev("audit.key.create")
	must(t, "SetAuditKey", s.SetAuditKey(ctx, k, e))
	got, err := s.AuditKey(ctx)
	must(t, "AuditKey", err)
	equal(t, "AuditKey", got, k)
	expectAudit(t, s, 0, e)

	// The audit key is not a signing key.
	_, err = s.GetKey(ctx, k.Name)
	checkErr(t, "GetKey of the audit key", err, errdefs.ErrNotFound)
	_, _, err = s.FindKeyVersion(ctx, k.Versions[0].Fingerprint)
	checkErr(t, "FindKeyVersion of the audit key", err, errdefs.ErrNotFound)
	keys, err := s.ListKeys(ctx)
	must(t, "ListKeys", err)
	if len(keys) != 0 {
		t.Fatalf("ListKeys returns the audit key: %+v", keys)
	}

	other := newKey("signerd-audit-2")
	unchanged(t, s, "second SetAuditKey", errdefs.ErrAlreadyExists, func() error { return s.SetAuditKey(ctx, other, ev("audit.key.create")) })
	got, err = s.AuditKey(ctx)
	must(t, "AuditKey after a refused replacement", err)
	equal(t, "AuditKey after a refused replacement", got, k)

	noVersion := auditKey()
	noVersion.Versions = nil
	checkErr(t, "SetAuditKey without a version", s.SetAuditKey(ctx, noVersion, ev("x")), errdefs.ErrInvalidArgument)
}

func testCheckpoints(t *testing.T, s store.Store) {
	ctx := context.Background()
	cps, err := s.ListCheckpoints(ctx)
	must(t, "ListCheckpoints empty", err)
	if len(cps) != 0 {
		t.Fatalf("a new store has %d checkpoints", len(cps))
	}
	var recs []store.AuditRecord
	for i := 0; i < 4; i++ {
		r, err := s.AppendAudit(ctx, ev("sign"))
		must(t, "AppendAudit", err)
		recs = append(recs, r)
	}
	cp := func(seq uint64) store.Checkpoint {
		return store.Checkpoint{Seq: seq, Hash: recs[seq-1].Hash, Time: at(int(seq)), KeyFingerprint: "fp", Signature: []byte{0x30, byte(seq)}}
	}
	c2 := cp(2)
	must(t, "PutCheckpoint 2", s.PutCheckpoint(ctx, c2))

	wrongHash := cp(3)
	wrongHash.Hash = recs[0].Hash
	unsigned := cp(3)
	unsigned.Signature = nil
	for _, c := range []struct {
		name string
		cp   store.Checkpoint
		want error
	}{
		{"the same seq again", cp(2), errdefs.ErrAlreadyExists},
		{"older than the newest", cp(1), errdefs.ErrFailedPrecondition},
		{"past the head", store.Checkpoint{Seq: 5, Hash: recs[3].Hash, Time: t0, KeyFingerprint: "fp", Signature: []byte{1}}, errdefs.ErrFailedPrecondition},
		{"hash of another record", wrongHash, errdefs.ErrFailedPrecondition},
		{"seq 0", store.Checkpoint{Hash: store.GenesisHash(), Time: t0, KeyFingerprint: "fp", Signature: []byte{1}}, errdefs.ErrInvalidArgument},
		{"short hash", store.Checkpoint{Seq: 3, Hash: []byte{1}, Time: t0, KeyFingerprint: "fp", Signature: []byte{1}}, errdefs.ErrInvalidArgument},
		{"unsigned", unsigned, errdefs.ErrInvalidArgument},
		{"no fingerprint", store.Checkpoint{Seq: 3, Hash: recs[2].Hash, Time: t0, Signature: []byte{1}}, errdefs.ErrInvalidArgument},
		{"no time", store.Checkpoint{Seq: 3, Hash: recs[2].Hash, KeyFingerprint: "fp", Signature: []byte{1}}, errdefs.ErrInvalidArgument},
	} {
		checkErr(t, "PutCheckpoint "+c.name, s.PutCheckpoint(ctx, c.cp), c.want)
	}
	// A checkpoint with a state digest next to one from before them: both
	// come back as written.
	c4 := cp(4)
	c4.StateDigest = []byte("0123456789abcdef0123456789abcdef")
	must(t, "PutCheckpoint 4", s.PutCheckpoint(ctx, c4))
	cps, err = s.ListCheckpoints(ctx)
	must(t, "ListCheckpoints", err)
	equal(t, "ListCheckpoints", cps, []store.Checkpoint{c2, c4})
	// Checkpoints are not audit events.
	equal(t, "audit log after checkpoints", audit(t, s), recs)

	ctxDone, cancel := context.WithCancel(ctx)
	cancel()
	checkErr(t, "PutCheckpoint with a canceled context", s.PutCheckpoint(ctxDone, cp(4)), context.Canceled)
	_, err = s.ListCheckpoints(ctxDone)
	checkErr(t, "ListCheckpoints with a canceled context", err, context.Canceled)
}

func testLogKey(t *testing.T, s store.Store) {
	ctx := context.Background()
	_, err := s.LogKey(ctx)
	checkErr(t, "LogKey of a new store", err, errdefs.ErrNotFound)

	// The audit key and the log key are two keys, recorded apart.
	must(t, "SetAuditKey", s.SetAuditKey(ctx, auditKey(), ev("audit.key.create")))
	k := newKey("signerd-log")
	k.Org = ""
	e := ev("log.key.create")
	must(t, "SetLogKey", s.SetLogKey(ctx, k, e))
	got, err := s.LogKey(ctx)
	must(t, "LogKey", err)
	equal(t, "LogKey", got, k)
	expectAudit(t, s, 1, e)
	audit, err := s.AuditKey(ctx)
	must(t, "AuditKey", err)
	equal(t, "AuditKey beside the log key", audit, auditKey())

	// Not a signing key.
	_, err = s.GetKey(ctx, k.Name)
	checkErr(t, "GetKey of the log key", err, errdefs.ErrNotFound)
	keys, err := s.ListKeys(ctx)
	must(t, "ListKeys", err)
	if len(keys) != 0 {
		t.Fatalf("ListKeys returns the log key: %+v", keys)
	}
	unchanged(t, s, "second SetLogKey", errdefs.ErrAlreadyExists, func() error { return s.SetLogKey(ctx, newKey("signerd-log-2"), ev("log.key.create")) })
	noVersion := newKey("x")
	noVersion.Versions = nil
	checkErr(t, "SetLogKey without a version", s.SetLogKey(ctx, noVersion, ev("x")), errdefs.ErrInvalidArgument)
}
