package storetest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/signerd/signerd/internal/errdefs"
	"github.com/signerd/signerd/internal/store"
)

func testAppendAudit(t *testing.T, s store.Store) {
	ctx := context.Background()
	recs, err := s.ListAudit(ctx, 0, 0)
	must(t, "ListAudit empty", err)
	if len(recs) != 0 {
		t.Fatalf("a new store has %d audit records", len(recs))
	}

	e1 := store.AuditEvent{
		Time: t0, Caller: "uid:0", Operation: "verify", Key: "k", Org: "acme",
		Digest: "ab", Outcome: "UNTRUSTED_SIGNER", Detail: "signer not trusted",
	}
	r1, err := s.AppendAudit(ctx, e1)
	must(t, "AppendAudit 1", err)
	if r1.Seq != 1 || !bytes.Equal(r1.PrevHash, store.GenesisHash()) || !bytes.Equal(r1.Hash, store.HashAuditRecord(r1)) {
		t.Fatalf("first record: seq %d prev %x hash %x; want seq 1, zero prev, hash %x", r1.Seq, r1.PrevHash, r1.Hash, store.HashAuditRecord(r1))
	}
	equal(t, "first record's event", r1.AuditEvent, e1)

	// A zero time is the store's clock; any zone is stored as UTC (the
	// hashed form).
	before := time.Now()
	r2, err := s.AppendAudit(ctx, store.AuditEvent{Operation: "denied", Outcome: "denied"})
	must(t, "AppendAudit 2", err)
	if r2.Time.IsZero() || r2.Time.Before(before.Add(-time.Minute)) || r2.Time.Location() != time.UTC {
		t.Fatalf("record with no time got %v, want now in UTC", r2.Time)
	}
	if r2.Seq != 2 || !bytes.Equal(r2.PrevHash, r1.Hash) {
		t.Fatalf("second record: seq %d prev %x; want 2, %x", r2.Seq, r2.PrevHash, r1.Hash)
	}
	e3 := ev("sign")
	e3.Time = t0.In(time.FixedZone("CET", 3600))
	r3, err := s.AppendAudit(ctx, e3)
	must(t, "AppendAudit 3", err)
	if !r3.Time.Equal(t0) || r3.Time.Location() != time.UTC {
		t.Fatalf("record time %v, want %v in UTC", r3.Time, t0)
	}

	all := audit(t, s)
	equal(t, "ListAudit returns what AppendAudit returned", all, []store.AuditRecord{r1, r2, r3})
	for _, c := range []struct {
		name         string
		since        uint64
		limit        int
		wantFirst, n int
	}{
		{"all", 0, 0, 1, 3},
		{"since 1", 1, 0, 2, 2},
		{"limit 1", 0, 1, 1, 1},
		{"since 1 limit 1", 1, 1, 2, 1},
		{"limit beyond", 0, 10, 1, 3},
		{"since last", 3, 0, 0, 0},
		{"since beyond", 1 << 62, 0, 0, 0},
		{"since max", ^uint64(0), 0, 0, 0},
	} {
		got, err := s.ListAudit(ctx, c.since, c.limit)
		must(t, "ListAudit "+c.name, err)
		if len(got) != c.n {
			t.Fatalf("ListAudit %s: %d records, want %d", c.name, len(got), c.n)
		}
		if c.n > 0 {
			equal(t, "ListAudit "+c.name, got, all[c.wantFirst-1:c.wantFirst-1+c.n])
		}
	}
	_, err = s.ListAudit(ctx, 0, -1)
	checkErr(t, "ListAudit negative limit", err, errdefs.ErrInvalidArgument)

	_, err = s.AppendAudit(ctx, store.AuditEvent{Time: t0, Outcome: "ok"})
	checkErr(t, "AppendAudit without operation", err, errdefs.ErrInvalidArgument)
	if n := len(audit(t, s)); n != 3 {
		t.Fatalf("a refused AppendAudit left %d records, want 3", n)
	}
}

// testAuditRecordsEveryChange drives every state-changing method once and
// checks the log holds exactly their events, in order, as one chain.
func testAuditRecordsEveryChange(t *testing.T, s store.Store) {
	ctx := context.Background()
	var want []store.AuditEvent
	step := func(op string, f func(store.AuditEvent) error) {
		t.Helper()
		e := evAt(op, len(want))
		e.Detail = "step " + op
		must(t, op, f(e))
		want = append(want, e)
	}
	// Signed by a key other than "k", which is revoked before the sign
	// step (its records are refused then: testPutSignatureRevoked).
	rec := sigRecord(digest("x"), "s", 1)
	step("key.create", func(e store.AuditEvent) error { return s.CreateKey(ctx, newKey("k"), e) })
	step("key.rotate", func(e store.AuditEvent) error { return s.AddKeyVersion(ctx, "k", version("k", 2), e) })
	step("trust.add", func(e store.AuditEvent) error { return s.TrustKey(ctx, "carried", versionTrust("k", 1, 1), e) })
	step("trust.add", func(e store.AuditEvent) error {
		return s.CarryTrust(ctx, "carried", "k", versionTrust("k", 1, 1).Fingerprint, versionTrust("k", 2, 1), e)
	})
	step("trust.add", func(e store.AuditEvent) error {
		return s.TrustKeyVersion(ctx, "byname", "k", versionTrust("k", 2, 1), e)
	})
	step("key.revoke", func(e store.AuditEvent) error {
		return errOf(s.RevokeKeyVersions(ctx, "k", store.ReasonSuperseded, at(1), e))
	})
	step("trust.add", func(e store.AuditEvent) error { return s.TrustKey(ctx, "acme", trusted("k", 1), e) })
	step("trust.remove", func(e store.AuditEvent) error {
		return errOf(s.RemoveTrust(ctx, "acme", trusted("k", 1).Fingerprint, at(2), e))
	})
	step("trust.grant", func(e store.AuditEvent) error { return s.GrantTrust(ctx, "acme", "sub", at(3), e) })
	step("trust.revoke_grant", func(e store.AuditEvent) error { return s.RevokeGrant(ctx, "acme", "sub", at(4), e) })
	step("policy.set", func(e store.AuditEvent) error { return s.SetRequireSignatures(ctx, "acme", true, e) })
	step("sign", func(e store.AuditEvent) error { return s.PutSignature(ctx, rec, e) })
	// The store puts the signature and its digest into its record.
	want[len(want)-1].Signature = rec.Signature
	want[len(want)-1].Digest = fmt.Sprintf("%x", rec.Digest)
	step("audit", func(e store.AuditEvent) error { _, err := s.AppendAudit(ctx, e); return err })
	expectAudit(t, s, 0, want...)
}

// testCanceledContext checks that a canceled context stops writes before
// they happen.
func testCanceledContext(t *testing.T, s store.Store) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	rec := sigRecord(digest("x"), "k", 1)
	for name, op := range map[string]func() error{
		"CreateKey":            func() error { return s.CreateKey(ctx, newKey("k"), ev("key.create")) },
		"PutSignature":         func() error { return s.PutSignature(ctx, rec, ev("sign")) },
		"AppendAudit":          func() error { _, err := s.AppendAudit(ctx, ev("audit")); return err },
		"SetRequireSignatures": func() error { return s.SetRequireSignatures(ctx, "acme", true, ev("policy.set")) },
	} {
		t.Run(name, func(t *testing.T) {
			unchanged(t, s, name, context.Canceled, op)
		})
	}
	if _, err := s.ListAudit(ctx, 0, 0); !errors.Is(err, context.Canceled) {
		t.Fatalf("ListAudit with a canceled context: %v, want context.Canceled", err)
	}
}
