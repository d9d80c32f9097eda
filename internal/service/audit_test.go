package service

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/sha256"
	"errors"
	"testing"

	"github.com/signerd/signerd/internal/auditlog"
	"github.com/signerd/signerd/internal/errdefs"
	"github.com/signerd/signerd/internal/keystore"
	"github.com/signerd/signerd/internal/store"
)

func TestEnsureAuditKey(t *testing.T) {
	f := newFixture(t)
	if _, _, err := f.svc.Checkpoint(f.ctx); !errors.Is(err, errdefs.ErrFailedPrecondition) {
		t.Fatalf("Checkpoint before EnsureAuditKey: %v", err)
	}
	k, err := f.svc.EnsureAuditKey(f.ctx)
	if err != nil {
		t.Fatal(err)
	}
	if k.Name != AuditKeyName || k.Algorithm != string(keystore.ECDSAP256) || len(k.Versions) != 1 {
		t.Fatalf("audit key %+v", k)
	}
	recs, _ := f.st.ListAudit(f.ctx, 0, 0)
	// The log key is created with it (logkey.go).
	if len(recs) != 2 || recs[0].Operation != "audit.key.create" || recs[0].Caller != daemonCaller ||
		recs[1].Operation != "log.key.create" || recs[1].Key != LogKeyName || recs[1].Caller != daemonCaller {
		t.Fatalf("audit log after creating the audit key: %+v", recs)
	}
	// A second start loads the same key and creates nothing.
	again, err := New(f.st, f.keys, Options{}).EnsureAuditKey(f.ctx)
	if err != nil || again.Versions[0].Fingerprint != k.Versions[0].Fingerprint {
		t.Fatalf("second EnsureAuditKey = %+v, %v", again, err)
	}
	if recs, _ := f.st.ListAudit(f.ctx, 0, 0); len(recs) != 2 {
		t.Fatalf("second EnsureAuditKey appended %d records", len(recs)-2)
	}
	if _, ver, err := f.svc.AuditPublicKey(f.ctx); err != nil || !bytes.Equal(ver.PublicKey, k.Versions[0].PublicKey) {
		t.Fatalf("AuditPublicKey = %v", err)
	}

	// The audit key is nobody's signing key.
	if keys, _ := f.svc.ListKeys(f.ctx); len(keys) != 0 {
		t.Fatalf("ListKeys shows the audit key: %+v", keys)
	}
	d := sha256.Sum256([]byte("x"))
	for _, reserved := range []string{AuditKeyName, LogKeyName} {
		for name, err := range map[string]error{
			"create": func() error {
				_, err := f.svc.CreateKey(f.ctx, CreateKeyInput{Name: AuditKeyName, Algorithm: keystore.ECDSAP256})
				return err
			}(),
			"sign": func() error {
				_, err := f.svc.Sign(f.ctx, SignInput{KeyName: AuditKeyName, Digest: d[:]})
				return err
			}(),
			"skill sign": func() error {
				_, err := f.svc.SignSkill(f.ctx, SignSkillInput{KeyName: AuditKeyName, Root: d[:]})
				return err
			}(),
			"get": func() error { _, err := f.svc.GetKey(f.ctx, reserved); return err }(),
		} {
			if !errors.Is(err, errdefs.ErrInvalidArgument) {
				t.Errorf("%s with the reserved name %s: %v, want a refusal", name, reserved, err)
			}
		}
	}

	// A token object that no longer matches the record stops start-up.
	f.keys.swap(k.Versions[0].CKAID)
	if _, err := New(f.st, f.keys, Options{}).EnsureAuditKey(f.ctx); errdefs.ReasonOf(err) != errdefs.ReasonKeyMismatch {
		t.Fatalf("EnsureAuditKey with a swapped token object: %v, want KEY_MISMATCH", err)
	}
}

func TestCheckpointAndVerifyAudit(t *testing.T) {
	f := newFixture(t)
	if _, err := f.svc.EnsureAuditKey(f.ctx); err != nil {
		t.Fatal(err)
	}
	cp, wrote, err := f.svc.Checkpoint(f.ctx)
	if err != nil || !wrote || cp.Seq != 2 {
		t.Fatalf("first Checkpoint = %+v, %v, %v", cp, wrote, err)
	}
	if _, wrote, err := f.svc.Checkpoint(f.ctx); err != nil || wrote {
		t.Fatalf("Checkpoint with an unmoved head wrote %v, %v", wrote, err)
	}
	f.createKey(t, "release", keystore.Ed25519)
	f.sign(t, "release", "pkg")
	cp, wrote, err = f.svc.Checkpoint(f.ctx)
	if err != nil || !wrote || cp.Seq != 4 {
		t.Fatalf("Checkpoint after two records = %+v, %v, %v", cp, wrote, err)
	}
	// A restarted service that finds the checkpoint for this head writes
	// nothing new.
	restarted := New(f.st, f.keys, Options{})
	if _, err := restarted.EnsureAuditKey(f.ctx); err != nil {
		t.Fatal(err)
	}
	if _, wrote, err := restarted.Checkpoint(f.ctx); err != nil || wrote {
		t.Fatalf("Checkpoint after a restart wrote %v, %v", wrote, err)
	}

	rep, err := f.svc.VerifyAudit(f.ctx)
	if err != nil || rep.HeadSeq != 4 || rep.Checkpoints != 2 || rep.Latest == nil || rep.Latest.Seq != 4 {
		t.Fatalf("VerifyAudit = %+v, %v", rep, err)
	}
	_, ver, _ := f.svc.AuditPublicKey(f.ctx)
	pub, _ := ParsePublicKeyDER(ver.PublicKey)
	if auditlog.Fingerprint(pub.(*ecdsa.PublicKey)) != ver.Fingerprint {
		t.Fatalf("audit key fingerprint %s is not auditlog's %s", ver.Fingerprint, auditlog.Fingerprint(pub.(*ecdsa.PublicKey)))
	}
	cps, _ := f.st.ListCheckpoints(f.ctx)
	for _, c := range cps {
		if err := auditlog.VerifyCheckpoint(pub.(*ecdsa.PublicKey), c); err != nil {
			t.Fatalf("checkpoint %d: %v", c.Seq, err)
		}
	}

	page, err := f.svc.ListAudit(f.ctx, 1, 0)
	if err != nil || page.HeadSeq != 4 || len(page.Records) != 3 || page.Records[0].Seq != 2 {
		t.Fatalf("ListAudit since 1 = %+v, %v", page, err)
	}
	if _, err := f.svc.ListAudit(f.ctx, 0, -1); !errors.Is(err, errdefs.ErrInvalidArgument) {
		t.Fatalf("ListAudit with a negative limit: %v", err)
	}
}

// editedLog is a store whose ListAudit shows record 3 edited, as a file
// changed while the daemon was stopped would.
type editedLog struct{ store.Store }

func (e editedLog) ListAudit(ctx context.Context, since uint64, limit int) ([]store.AuditRecord, error) {
	recs, err := e.Store.ListAudit(ctx, since, limit)
	for i := range recs {
		if recs[i].Seq == 3 {
			recs[i].Outcome = "denied"
		}
	}
	return recs, err
}

// TestCheckpointRefusesDamagedLog: a checkpoint never vouches for records
// that no longer chain from the previous checkpoint.
func TestCheckpointRefusesDamagedLog(t *testing.T) {
	f := newFixture(t)
	if _, err := f.svc.EnsureAuditKey(f.ctx); err != nil {
		t.Fatal(err)
	}
	if _, _, err := f.svc.Checkpoint(f.ctx); err != nil {
		t.Fatal(err)
	}
	f.createKey(t, "release", keystore.Ed25519)
	f.createKey(t, "other", keystore.Ed25519)
	svc := New(editedLog{f.st}, f.keys, Options{Logger: f.svc.log})
	if _, err := svc.EnsureAuditKey(f.ctx); err != nil {
		t.Fatal(err)
	}
	_, wrote, err := svc.Checkpoint(f.ctx)
	var ce *store.ChainError
	if wrote || !errors.As(err, &ce) || ce.Seq != 3 || ce.Kind != store.ChainEdited {
		t.Fatalf("Checkpoint over an edited record: wrote %v, %v; want a refusal naming seq 3", wrote, err)
	}
	if cps, _ := f.st.ListCheckpoints(f.ctx); len(cps) != 1 {
		t.Fatalf("%d checkpoints after a refusal, want 1", len(cps))
	}
}
