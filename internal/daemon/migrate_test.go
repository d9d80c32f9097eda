package daemon

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/signerd/signerd/internal/auditlog"
	"github.com/signerd/signerd/internal/errdefs"
	"github.com/signerd/signerd/internal/store"
	"github.com/signerd/signerd/internal/store/boltstore"
	"github.com/signerd/signerd/internal/store/etcdstore"
	"github.com/signerd/signerd/internal/testutil/etcdtest"
)

var mt0 = time.Date(2025, 6, 1, 8, 0, 0, 0, time.UTC)

func mev(op string, i int) store.AuditEvent {
	return store.AuditEvent{Time: mt0.Add(time.Duration(i) * time.Second), Caller: "uid:0", Operation: op, Outcome: "ok"}
}

func mversion(name string, v uint32) store.KeyVersion {
	sum := sha256.Sum256(fmt.Appendf(nil, "%s/%d", name, v))
	return store.KeyVersion{Version: v, CKAID: sum[:16], PublicKey: sum[:], Fingerprint: hex.EncodeToString(sum[:]), State: store.KeyActive, CreatedAt: mt0}
}

// populate fills a bbolt store as a signerd that ran for a while would:
// keys (one rotated, one revoked), orgs with trust, grants and policy,
// signatures (several per digest), denials, an audit key and checkpoints it
// signed.
func populate(t *testing.T, st *boltstore.Store) {
	t.Helper()
	ctx := context.Background()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	audit, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	must(err)
	der, err := x509.MarshalPKIXPublicKey(&audit.PublicKey)
	must(err)
	av := store.KeyVersion{Version: 1, CKAID: []byte("audit-ckaid"), PublicKey: der, Fingerprint: auditlog.Fingerprint(&audit.PublicKey), State: store.KeyActive, CreatedAt: mt0}
	must(st.SetAuditKey(ctx, store.Key{Name: "signerd-audit", Algorithm: "ecdsa-p256", CreatedAt: mt0, Versions: []store.KeyVersion{av}}, mev("audit.key.create", 0)))
	// The log key (a software key here: the HSM's is tested in
	// softhsm-test) signs each checkpoint's note too.
	logPriv := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{3}, ed25519.SeedSize))
	lder, err := x509.MarshalPKIXPublicKey(logPriv.Public())
	must(err)
	lsum := sha256.Sum256(logPriv.Public().(ed25519.PublicKey))
	lv := store.KeyVersion{Version: 1, CKAID: []byte("log-ckaid"), PublicKey: lder, Fingerprint: hex.EncodeToString(lsum[:]), State: store.KeyActive, CreatedAt: mt0}
	must(st.SetLogKey(ctx, store.Key{Name: "signerd-log", Algorithm: "ed25519", CreatedAt: mt0, Versions: []store.KeyVersion{lv}}, mev("log.key.create", 0)))
	noteSigner, err := auditlog.NewNoteSigner("signerd.test/log", logPriv)
	must(err)
	i := 1
	for _, name := range []string{"release", "skills", "old"} {
		must(st.CreateKey(ctx, store.Key{Name: name, Org: "acme", Algorithm: "ed25519", CreatedAt: mt0, Versions: []store.KeyVersion{mversion(name, 1)}}, mev("key.create", i)))
		i++
	}
	must(st.AddKeyVersion(ctx, "release", mversion("release", 2), mev("key.rotate", i)))
	_, err = st.RevokeKeyVersions(ctx, "old", store.ReasonKeyCompromise, mt0, mev("key.revoke", i))
	must(err)
	for _, org := range []string{"acme", "beta"} {
		must(st.TrustKey(ctx, org, store.TrustedKey{Fingerprint: mversion("release", 2).Fingerprint, Algorithm: "ed25519", PublicKey: mversion("release", 2).PublicKey, KeyName: "release", TrustedAt: mt0}, mev("trust.add", i)))
	}
	must(st.GrantTrust(ctx, "beta", "acme", mt0, mev("trust.grant", i)))
	must(st.SetRequireSignatures(ctx, "acme", true, mev("policy.set", i)))
	cp := func() {
		seq, hash, err := st.AuditHead(ctx)
		must(err)
		c, err := auditlog.SignCheckpoint(audit, store.Checkpoint{Seq: seq, Hash: hash, Time: mt0.Add(time.Duration(seq) * time.Minute), KeyFingerprint: av.Fingerprint})
		must(err)
		root, err := st.LogRoot(ctx, seq)
		must(err)
		c.Note, err = auditlog.SignCheckpointNote(noteSigner, seq, root, nil)
		must(err)
		must(st.PutCheckpoint(ctx, c))
	}
	cp()
	for n := range 130 {
		// Packages n and n+100 (n < 30) have the same digest and the same
		// signature, as Ed25519 re-signing an unchanged artifact gives:
		// two records, each with its own audit record.
		d := sha256.Sum256(fmt.Appendf(nil, "pkg %d", n%50))
		rec := store.SignatureRecord{Digest: d[:], Format: store.FormatCloacina, KeyName: "release", KeyVersion: 2,
			Fingerprint: mversion("release", 2).Fingerprint, Algorithm: "ed25519", Signature: bytes.Repeat([]byte{byte(n % 100)}, 64),
			SignedAt: mt0.Add(time.Duration(n) * time.Second), ArtifactName: fmt.Sprintf("pkg-%d.so", n), Caller: "uid:1000", Document: fmt.Appendf(nil, `{"n":%d}`, n)}
		e := mev("sign", n)
		e.Digest = hex.EncodeToString(d[:])
		must(st.PutSignature(ctx, rec, e))
		if n%40 == 0 {
			_, err := st.AppendAudit(ctx, store.AuditEvent{Caller: "uid:7", Operation: "sign", Outcome: "denied"})
			must(err)
		}
	}
	cp()
}

func TestMigrateBboltToEtcd(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "signerd.db")
	src, err := boltstore.Open(ctx, path, boltstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	populate(t, src)
	src.Close()
	if src, err = boltstore.Open(ctx, path, boltstore.Options{ReadOnly: true}); err != nil {
		t.Fatal(err)
	}
	defer src.Close()

	c := etcdtest.Start(t, 1, etcdtest.Options{})
	cli := c.Client(t)
	openDst := func(t *testing.T, prefix string, forImport bool) (*etcdstore.Store, error) {
		s, err := etcdstore.Open(ctx, etcdstore.Options{Client: cli, Prefix: prefix, ForImport: forImport})
		if err == nil {
			t.Cleanup(func() { s.Close() })
		}
		return s, err
	}
	dst, err := openDst(t, "/migrated/", true)
	if err != nil {
		t.Fatal(err)
	}
	rep, err := migrateStore(ctx, src, dst)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("report:\n%s", rep)
	if rep.keys != 3 || rep.orgs != 2 || rep.signatures != 130 || rep.checkpoints != 2 || !rep.auditKey || rep.latest == nil || rep.latest.Seq != rep.headSeq {
		t.Fatalf("report %+v", rep)
	}

	// The copy has the same tree and log key, and finds every signature's
	// leaf where the source does.
	for n := range 50 {
		d := sha256.Sum256(fmt.Appendf(nil, "pkg %d", n))
		sigs, err := src.SignaturesByDigest(ctx, d[:])
		if err != nil || len(sigs) == 0 {
			t.Fatalf("source signatures of pkg %d: %v", n, err)
		}
		for _, r := range sigs {
			want, err := src.SignatureLeaf(ctx, d[:], r.Signature)
			if err != nil {
				t.Fatal(err)
			}
			if got, err := dst.SignatureLeaf(ctx, d[:], r.Signature); err != nil || got != want {
				t.Fatalf("copied SignatureLeaf of pkg %d = %d, %v; the source's is %d", n, got, err, want)
			}
		}
	}
	if sk, _ := src.LogKey(ctx); true {
		dk, err := dst.LogKey(ctx)
		if err != nil || !bytes.Equal(dk.Versions[0].PublicKey, sk.Versions[0].PublicKey) {
			t.Fatalf("copied log key %+v, %v", dk, err)
		}
	}

	// The copy serves: a signerd opening it continues the same chain, and
	// a new signature sorts after the copied ones of its digest.
	live, err := openDst(t, "/migrated/", false)
	if err != nil {
		t.Fatalf("open the migrated store for service: %v", err)
	}
	d := sha256.Sum256([]byte("pkg 3"))
	before, err := live.SignaturesByDigest(ctx, d[:])
	if err != nil {
		t.Fatal(err)
	}
	rec := before[0]
	rec.ArtifactName = "after-migration"
	rec.Signature = bytes.Repeat([]byte{0xfe}, 64)
	afterEv := mev("sign", 999)
	afterEv.Digest = hex.EncodeToString(d[:])
	if err := live.PutSignature(ctx, rec, afterEv); err != nil {
		t.Fatal(err)
	}
	after, err := live.SignaturesByDigest(ctx, d[:])
	if err != nil || len(after) != len(before)+1 || after[len(after)-1].ArtifactName != "after-migration" {
		t.Fatalf("signatures of a digest after the migration: %d (%v), want %d with the new one last", len(after), err, len(before)+1)
	}
	if err := live.VerifyAudit(ctx); err != nil {
		t.Fatal(err)
	}
	if leaf, err := live.SignatureLeaf(ctx, d[:], rec.Signature); err != nil || leaf+1 != rep.headSeq+1 {
		t.Fatalf("SignatureLeaf of a signature made after the migration = %d, %v; want %d", leaf, err, rep.headSeq)
	}

	t.Run("refuses a non-empty destination", func(t *testing.T) {
		again, err := openDst(t, "/migrated/", true)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := migrateStore(ctx, src, again); !errors.Is(err, errdefs.ErrFailedPrecondition) {
			t.Fatalf("migrate into a used prefix: %v", err)
		}
	})
}

func TestMigrateRefusesDamagedSource(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "signerd.db")
	src, err := boltstore.Open(ctx, path, boltstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	populate(t, src)
	// A checkpoint that no longer matches: forged with another key.
	other, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if _, err := src.AppendAudit(ctx, mev("verify", 1)); err != nil {
		t.Fatal(err)
	}
	seq, hash, _ := src.AuditHead(ctx)
	forged, _ := auditlog.SignCheckpoint(other, store.Checkpoint{Seq: seq, Hash: hash, Time: mt0, KeyFingerprint: auditlog.Fingerprint(&other.PublicKey)})
	if err := src.PutCheckpoint(ctx, forged); err != nil {
		t.Fatal(err)
	}
	c := etcdtest.Start(t, 1, etcdtest.Options{})
	dst, err := etcdstore.Open(ctx, etcdstore.Options{Client: c.Client(t), ForImport: true})
	if err != nil {
		t.Fatal(err)
	}
	defer dst.Close()
	var ce *store.ChainError
	if _, err := migrateStore(ctx, src, dst); !errors.As(err, &ce) || ce.Kind != store.ChainWrongCheckpointKey {
		t.Fatalf("migrate a damaged source: %v, want the wrong checkpoint key named", err)
	}
	if keys, _ := dst.ListKeys(ctx); len(keys) != 0 {
		t.Fatal("a refused migration copied keys")
	}
}
