package service

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/signerd/signerd/internal/errdefs"
	"github.com/signerd/signerd/internal/keystore"
	"github.com/signerd/signerd/internal/pkgsig"
	"github.com/signerd/signerd/internal/store"
	"github.com/signerd/signerd/internal/store/boltstore"
)

type fixture struct {
	svc  *Service
	st   store.Store
	keys *memKeys
	ctx  context.Context
}

func newFixture(t testing.TB) *fixture {
	t.Helper()
	ctx := WithCaller(context.Background(), Caller{ID: "uid:test"})
	st, err := boltstore.Open(ctx, filepath.Join(t.TempDir(), "signerd.db"), boltstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	keys := newMemKeys()
	return &fixture{svc: New(st, keys, Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}), st: st, keys: keys, ctx: ctx}
}

func (f *fixture) createKey(t testing.TB, name string, alg keystore.Algorithm) store.Key {
	t.Helper()
	k, err := f.svc.CreateKey(f.ctx, CreateKeyInput{Name: name, Algorithm: alg})
	if err != nil {
		t.Fatalf("CreateKey(%s): %v", name, err)
	}
	return k
}

func (f *fixture) sign(t *testing.T, key string, content string) ([]byte, []byte) {
	t.Helper()
	d := sha256.Sum256([]byte(content))
	out, err := f.svc.Sign(f.ctx, SignInput{KeyName: key, Digest: d[:], ArtifactName: "pkg.so"})
	if err != nil {
		t.Fatalf("Sign: %v", err)
	}
	return d[:], out.Document
}

func (f *fixture) trust(t *testing.T, org, key string) store.TrustedKey {
	t.Helper()
	tk, err := f.svc.AddTrust(f.ctx, AddTrustInput{Org: org, KeyName: key})
	if err != nil {
		t.Fatalf("AddTrust(%s, %s): %v", org, key, err)
	}
	return tk
}

func digestOf(s string) []byte { d := sha256.Sum256([]byte(s)); return d[:] }

func TestSignProducesVerifiableCloacinaDocument(t *testing.T) {
	f := newFixture(t)
	k := f.createKey(t, "release", keystore.Ed25519)
	digest, doc := f.sign(t, "release", "package bytes")
	sig, err := pkgsig.Parse(doc)
	if err != nil {
		t.Fatal(err)
	}
	pub, err := ParsePublicKeyDER(k.Versions[0].PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	var d [32]byte
	copy(d[:], digest)
	if err := pkgsig.Check(d, sig, pub.(ed25519.PublicKey)); err != nil {
		t.Fatalf("document does not verify: %v", err)
	}
	recs, err := f.st.SignaturesByDigest(f.ctx, digest)
	if err != nil || len(recs) != 1 {
		t.Fatalf("records = %v, %v", recs, err)
	}
	if recs[0].KeyVersion != 1 || recs[0].Caller != "uid:test" || string(recs[0].Document) != string(doc) {
		t.Fatalf("record = %+v", recs[0])
	}
}

func TestSignRejects(t *testing.T) {
	f := newFixture(t)
	f.createKey(t, "release", keystore.Ed25519)
	f.createKey(t, "skills", keystore.ECDSAP256)
	good := digestOf("x")
	tests := []struct {
		name string
		in   SignInput
		want error
	}{
		{"short digest", SignInput{KeyName: "release", Digest: good[:31]}, errdefs.ErrInvalidArgument},
		{"long digest", SignInput{KeyName: "release", Digest: append(good, 0)}, errdefs.ErrInvalidArgument},
		{"unknown key", SignInput{KeyName: "nope", Digest: good}, errdefs.ErrNotFound},
		{"bad key name", SignInput{KeyName: "../x", Digest: good}, errdefs.ErrInvalidArgument},
		{"wrong algorithm", SignInput{KeyName: "skills", Digest: good}, errdefs.ErrInvalidArgument},
		{"bad artifact name", SignInput{KeyName: "release", Digest: good, ArtifactName: "a\nb"}, errdefs.ErrInvalidArgument},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := f.svc.Sign(f.ctx, tt.in); !errors.Is(err, tt.want) {
				t.Fatalf("Sign = %v, want %v", err, tt.want)
			}
		})
	}
	recs, _ := f.st.SignaturesByDigest(f.ctx, good)
	if len(recs) != 0 {
		t.Fatalf("a refused Sign left %d records", len(recs))
	}
}

func TestSignRefusesSwappedKey(t *testing.T) {
	f := newFixture(t)
	k := f.createKey(t, "release", keystore.Ed25519)
	f.keys.swap(k.Versions[0].CKAID)
	_, err := f.svc.Sign(f.ctx, SignInput{KeyName: "release", Digest: digestOf("x")})
	if !errors.Is(err, errdefs.ErrFailedPrecondition) || errdefs.ReasonOf(err) != errdefs.ReasonKeyMismatch {
		t.Fatalf("Sign with swapped key = %v, want KEY_MISMATCH", err)
	}
}

func TestCreateKeyRejects(t *testing.T) {
	f := newFixture(t)
	f.createKey(t, "release", keystore.Ed25519)
	for name, in := range map[string]CreateKeyInput{
		"duplicate":     {Name: "release", Algorithm: keystore.Ed25519},
		"bad algorithm": {Name: "k2", Algorithm: "rsa"},
		"bad name":      {Name: "", Algorithm: keystore.Ed25519},
		"spaces":        {Name: "a b", Algorithm: keystore.Ed25519},
	} {
		t.Run(name, func(t *testing.T) {
			if _, err := f.svc.CreateKey(f.ctx, in); err == nil {
				t.Fatal("CreateKey succeeded")
			}
		})
	}
	if keys, _ := f.svc.ListKeys(f.ctx); len(keys) != 1 {
		t.Fatalf("ListKeys = %d keys, want 1", len(keys))
	}
}

// TestVerify covers the trust model and the order of refusals.
func TestVerify(t *testing.T) {
	f := newFixture(t)
	f.createKey(t, "release", keystore.Ed25519)
	f.createKey(t, "vendor", keystore.Ed25519)
	f.createKey(t, "grandchild", keystore.Ed25519)
	f.trust(t, "acme", "release")
	f.trust(t, "vendor-org", "vendor")
	f.trust(t, "deep", "grandchild")
	if err := f.svc.GrantTrust(f.ctx, "platform", "acme"); err != nil {
		t.Fatal(err)
	}
	if err := f.svc.GrantTrust(f.ctx, "acme", "deep"); err != nil {
		t.Fatal(err)
	}
	if err := f.svc.GrantTrust(f.ctx, "platform", "mobile"); err != nil {
		t.Fatal(err)
	}
	if err := f.svc.SetRequireSignatures(f.ctx, "bare", false); err != nil {
		t.Fatal(err)
	}
	relDigest, relDoc := f.sign(t, "release", "release package")
	venDigest, venDoc := f.sign(t, "vendor", "vendor package")
	deepDigest, deepDoc := f.sign(t, "grandchild", "deep package")
	var bad pkgsig.Document
	if err := json.Unmarshal(relDoc, &bad); err != nil {
		t.Fatal(err)
	}
	bad.Signature = base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{0xab}, 64))
	badDoc := bad.Encode()
	if _, err := pkgsig.Parse(badDoc); err != nil {
		t.Fatalf("test setup: bad doc does not parse: %v\n%s", err, badDoc)
	}

	tests := []struct {
		name    string
		org     string
		digest  []byte
		doc     []byte
		want    error
		outcome Outcome
	}{
		{"detached, trusted", "acme", relDigest, relDoc, nil, OutcomeVerified},
		{"recorded, trusted", "acme", relDigest, nil, nil, OutcomeVerified},
		{"granted child's key", "platform", relDigest, nil, nil, OutcomeVerified},
		{"not transitive", "platform", deepDigest, deepDoc, errdefs.ErrUntrustedSigner, 0},
		{"child trusts grandchild via its own grant", "acme", deepDigest, deepDoc, nil, OutcomeVerified},
		{"untrusted signer", "acme", venDigest, venDoc, errdefs.ErrUntrustedSigner, 0},
		{"configured org that trusts nothing", "bare", relDigest, relDoc, errdefs.ErrUntrustedSigner, 0},
		{"unknown org is refused, signed", "nobody", relDigest, relDoc, errdefs.ErrUnknownOrg, 0},
		{"unknown org is refused, recorded", "nobody", relDigest, nil, errdefs.ErrUnknownOrg, 0},
		{"unknown org is refused, unsigned", "nobody", digestOf("unsigned"), nil, errdefs.ErrUnknownOrg, 0},
		{"unknown org is refused, tampered", "nobody", digestOf("other bytes"), relDoc, errdefs.ErrUnknownOrg, 0},
		{"grant child never configured itself", "mobile", relDigest, relDoc, errdefs.ErrUnknownOrg, 0},
		{"tampered", "acme", digestOf("other bytes"), relDoc, errdefs.ErrPackageTampered, 0},
		{"invalid signature", "acme", relDigest, badDoc, errdefs.ErrInvalidSignature, 0},
		{"malformed", "acme", relDigest, []byte("{ invalid json }"), errdefs.ErrMalformedSignature, 0},
		{"empty document, recorded signature exists", "acme", relDigest, []byte{}, errdefs.ErrMalformedSignature, 0},
		{"unsigned, default policy admits", "acme", digestOf("unsigned"), nil, nil, OutcomeUnsignedAdmitted},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res, err := f.svc.Verify(f.ctx, VerifyInput{Org: tt.org, Digest: tt.digest, Document: tt.doc})
			if tt.want != nil {
				if !errors.Is(err, tt.want) {
					t.Fatalf("Verify = %+v, %v; want %v", res, err, tt.want)
				}
				if res.Outcome != 0 {
					t.Fatalf("refusal returned an outcome: %+v", res)
				}
				return
			}
			if err != nil || res.Outcome != tt.outcome {
				t.Fatalf("Verify = %+v, %v; want outcome %v", res, err, tt.outcome)
			}
		})
	}

	t.Run("require signatures refuses unsigned", func(t *testing.T) {
		if err := f.svc.SetRequireSignatures(f.ctx, "strict", true); err != nil {
			t.Fatal(err)
		}
		_, err := f.svc.Verify(f.ctx, VerifyInput{Org: "strict", Digest: digestOf("unsigned")})
		if !errors.Is(err, errdefs.ErrSignatureNotFound) {
			t.Fatalf("Verify = %v, want SIGNATURE_NOT_FOUND", err)
		}
	})
	t.Run("bad input", func(t *testing.T) {
		for _, in := range []VerifyInput{{Org: "", Digest: relDigest}, {Org: "acme", Digest: relDigest[:5]}} {
			if _, err := f.svc.Verify(f.ctx, in); !errors.Is(err, errdefs.ErrInvalidArgument) {
				t.Fatalf("Verify(%+v) = %v, want ErrInvalidArgument", in, err)
			}
		}
	})
	t.Run("failures are audited", func(t *testing.T) {
		recs, err := f.st.ListAudit(f.ctx, 0, 0)
		if err != nil {
			t.Fatal(err)
		}
		var n int
		for _, r := range recs {
			if r.Operation == "verify" && r.Outcome == string(errdefs.ReasonPackageTampered) {
				n++
			}
		}
		if n != 1 {
			t.Fatalf("%d tampered audit records, want 1", n)
		}
	})
}

func TestVerifyAnyRecordedSignatureSuffices(t *testing.T) {
	f := newFixture(t)
	f.createKey(t, "a", keystore.Ed25519)
	f.createKey(t, "b", keystore.Ed25519)
	f.trust(t, "acme", "b")
	d, _ := f.sign(t, "a", "same package")
	f.sign(t, "b", "same package")
	res, err := f.svc.Verify(f.ctx, VerifyInput{Org: "acme", Digest: d})
	if err != nil || res.KeyName != "b" {
		t.Fatalf("Verify = %+v, %v; want verified by b", res, err)
	}
	// An org trusting neither gets the most informative refusal.
	if err := f.svc.SetRequireSignatures(f.ctx, "other", false); err != nil {
		t.Fatal(err)
	}
	if _, err := f.svc.Verify(f.ctx, VerifyInput{Org: "other", Digest: d}); !errors.Is(err, errdefs.ErrUntrustedSigner) {
		t.Fatalf("Verify = %v, want UNTRUSTED_SIGNER", err)
	}
}

func TestRemovedTrustIsKeyRevoked(t *testing.T) {
	f := newFixture(t)
	f.createKey(t, "release", keystore.Ed25519)
	tk := f.trust(t, "acme", "release")
	d, doc := f.sign(t, "release", "pkg")
	if _, err := f.svc.RemoveTrust(f.ctx, "acme", tk.Fingerprint); err != nil {
		t.Fatal(err)
	}
	for _, in := range []VerifyInput{{Org: "acme", Digest: d, Document: doc}, {Org: "acme", Digest: d}} {
		if _, err := f.svc.Verify(f.ctx, in); !errors.Is(err, errdefs.ErrKeyRevoked) {
			t.Fatalf("Verify after trust removal = %v, want KEY_REVOKED", err)
		}
	}
	if _, err := f.svc.RemoveTrust(f.ctx, "acme", tk.Fingerprint); !errors.Is(err, errdefs.ErrNotFound) {
		t.Fatalf("second RemoveTrust = %v, want ErrNotFound", err)
	}
	// Trusting again restores verification.
	f.trust(t, "acme", "release")
	if _, err := f.svc.Verify(f.ctx, VerifyInput{Org: "acme", Digest: d, Document: doc}); err != nil {
		t.Fatalf("Verify after re-trust = %v", err)
	}
}

func TestRevokedKeySemantics(t *testing.T) {
	for _, tt := range []struct {
		reason      store.RevocationReason
		oldStillOK  bool
		detachedOld bool
	}{
		{store.ReasonKeyCompromise, false, false},
		{store.ReasonSuperseded, true, true},
	} {
		t.Run(string(tt.reason), func(t *testing.T) {
			f := newFixture(t)
			now := time.Now()
			f.svc.now = func() time.Time { return now }
			f.createKey(t, "release", keystore.Ed25519)
			f.trust(t, "acme", "release")
			d, doc := f.sign(t, "release", "pkg")
			now = now.Add(time.Hour)
			if _, err := f.svc.RevokeKey(f.ctx, "release", tt.reason); err != nil {
				t.Fatal(err)
			}
			_, err := f.svc.Verify(f.ctx, VerifyInput{Org: "acme", Digest: d})
			if tt.oldStillOK != (err == nil) {
				t.Fatalf("recorded signature after %s: %v", tt.reason, err)
			}
			_, err = f.svc.Verify(f.ctx, VerifyInput{Org: "acme", Digest: d, Document: doc})
			if tt.detachedOld != (err == nil) {
				t.Fatalf("detached signature after %s: %v", tt.reason, err)
			}
			if err != nil && !errors.Is(err, errdefs.ErrKeyRevoked) {
				t.Fatalf("want KEY_REVOKED, got %v", err)
			}
			if _, err := f.svc.Sign(f.ctx, SignInput{KeyName: "release", Digest: digestOf("new")}); !errors.Is(err, errdefs.ErrFailedPrecondition) {
				t.Fatalf("revoked key signed: %v", err)
			}
		})
	}
}

func TestAddTrustPEM(t *testing.T) {
	f := newFixture(t)
	pem, err := os.ReadFile("testdata/cloacina/release.pub.pem")
	if err != nil {
		t.Fatal(err)
	}
	tk, err := f.svc.AddTrust(f.ctx, AddTrustInput{Org: "acme", PublicKeyPEM: pem})
	if err != nil {
		t.Fatal(err)
	}
	if tk.Fingerprint != "3097e2dee2cb4a34b53840cdb705aed71067c36f68db0e0f559c3f3fa043315f" {
		t.Fatalf("fingerprint %s", tk.Fingerprint)
	}
	if _, err := f.svc.AddTrust(f.ctx, AddTrustInput{Org: "acme", PublicKeyPEM: pem}); !errors.Is(err, errdefs.ErrAlreadyExists) {
		t.Fatalf("duplicate AddTrust = %v", err)
	}
	sigDoc, _ := os.ReadFile("testdata/cloacina/libworkflow.so.sig")
	pkg, _ := os.ReadFile("testdata/cloacina/libworkflow.so")
	if _, err := f.svc.Verify(f.ctx, VerifyInput{Org: "acme", Digest: digestOf(string(pkg)), Document: sigDoc}); err != nil {
		t.Fatalf("fixture signature with trusted PEM: %v", err)
	}
	for name, in := range map[string]AddTrustInput{
		"garbage PEM": {Org: "acme", PublicKeyPEM: []byte("nope")},
		"no key":      {Org: "acme"},
		"both":        {Org: "acme", KeyName: "x", PublicKeyPEM: pem},
		"no org":      {PublicKeyPEM: pem},
	} {
		if _, err := f.svc.AddTrust(f.ctx, in); !errors.Is(err, errdefs.ErrInvalidArgument) {
			t.Errorf("%s: AddTrust = %v, want ErrInvalidArgument", name, err)
		}
	}
}

func TestListTrusted(t *testing.T) {
	f := newFixture(t)
	f.createKey(t, "a", keystore.Ed25519)
	f.createKey(t, "b", keystore.Ed25519)
	f.trust(t, "parent", "a")
	f.trust(t, "child", "a")
	f.trust(t, "child", "b")
	if err := f.svc.GrantTrust(f.ctx, "parent", "child"); err != nil {
		t.Fatal(err)
	}
	if err := f.svc.GrantTrust(f.ctx, "parent", "parent"); !errors.Is(err, errdefs.ErrInvalidArgument) {
		t.Fatalf("self grant = %v", err)
	}
	v, err := f.svc.ListTrusted(f.ctx, "parent")
	if err != nil {
		t.Fatal(err)
	}
	if len(v.Keys) != 2 || v.Keys[0].KeyName != "a" || v.Keys[0].ViaOrg != "" || v.Keys[1].KeyName != "b" || v.Keys[1].ViaOrg != "child" {
		t.Fatalf("ListTrusted = %+v", v.Keys)
	}
	if err := f.svc.RevokeGrant(f.ctx, "parent", "child"); err != nil {
		t.Fatal(err)
	}
	if v, _ := f.svc.ListTrusted(f.ctx, "parent"); len(v.Keys) != 1 {
		t.Fatalf("after revoking grant: %+v", v.Keys)
	}
	// An org nobody configured is not an org that trusts nothing.
	if _, err := f.svc.ListTrusted(f.ctx, "never-configured"); !errors.Is(err, errdefs.ErrNotFound) || errdefs.ReasonOf(err) != errdefs.ReasonUnknownOrg {
		t.Fatalf("ListTrusted of an unknown org = %v (reason %q), want NOT_FOUND, UNKNOWN_ORG", err, errdefs.ReasonOf(err))
	}
}
