package service

import (
	"context"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/signerd/signerd/internal/errdefs"
	"github.com/signerd/signerd/internal/keystore"
	"github.com/signerd/signerd/internal/store"
)

// revokeBeforeAddVersion: `key revoke` commits between RotateKey's check
// that the key has a current version and the commit of the new version
// (the window holds the HSM's key generation).
type revokeBeforeAddVersion struct {
	store.Store
	other *Service
}

func (s revokeBeforeAddVersion) AddKeyVersion(ctx context.Context, name string, v store.KeyVersion, ev store.AuditEvent) error {
	if _, err := s.other.RevokeKey(ctx, name, store.ReasonKeyCompromise); err != nil {
		return err
	}
	return s.Store.AddKeyVersion(ctx, name, v, ev)
}

// TestRotateRacingRevoke: once `key revoke` has returned, the key signs
// nothing, whatever rotation raced it: the rotation is refused KEY_REVOKED
// in the commit that would have added its version (before, the new
// version was active, and trusted by every org that trusted the old one).
func TestRotateRacingRevoke(t *testing.T) {
	f := newFixture(t)
	f.createKey(t, "k", keystore.Ed25519)
	f.trust(t, "acme", "k")
	quiet := Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
	racing := New(revokeBeforeAddVersion{Store: f.st, other: f.svc}, f.keys, quiet)
	if _, err := racing.RotateKey(f.ctx, "k"); !errors.Is(err, errdefs.ErrFailedPrecondition) || errdefs.ReasonOf(err) != errdefs.ReasonKeyRevoked {
		t.Fatalf("RotateKey racing a revocation: %v, want KEY_REVOKED", err)
	}
	fresh := New(f.st, f.keys, quiet)
	if _, err := fresh.Sign(f.ctx, SignInput{KeyName: "k", Digest: digestOf("after the revocation"), ArtifactName: "pkg.so"}); errdefs.ReasonOf(err) != errdefs.ReasonKeyRevoked {
		t.Fatalf("Sign after the revocation returned: %v, want KEY_REVOKED", err)
	}
	k, err := f.st.GetKey(f.ctx, "k")
	if err != nil || len(k.Versions) != 1 {
		t.Fatalf("key after the raced rotation: %d versions, %v; want the one, revoked", len(k.Versions), err)
	}
	trusted, err := fresh.ListTrusted(f.ctx, "acme")
	if err != nil || len(trusted.Keys) != 1 {
		t.Fatalf("acme trusts %d keys after the raced rotation (%v), want 1", len(trusted.Keys), err)
	}
}

// beforeFirstTrust is a store on which race runs once, just before the
// first TrustKey, TrustKeyVersion or CarryTrust commits: the window between a caller's read of the key
// (or of the orgs) and its trust change.
type beforeFirstTrust struct {
	store.Store
	once *sync.Once
	race func() error
}

func (s beforeFirstTrust) TrustKey(ctx context.Context, org string, k store.TrustedKey, ev store.AuditEvent) error {
	if err := s.first(); err != nil {
		return err
	}
	return s.Store.TrustKey(ctx, org, k, ev)
}

func (s beforeFirstTrust) TrustKeyVersion(ctx context.Context, org, keyName string, k store.TrustedKey, ev store.AuditEvent) error {
	if err := s.first(); err != nil {
		return err
	}
	return s.Store.TrustKeyVersion(ctx, org, keyName, k, ev)
}

func (s beforeFirstTrust) CarryTrust(ctx context.Context, org, keyName, prev string, next store.TrustedKey, ev store.AuditEvent) error {
	if err := s.first(); err != nil {
		return err
	}
	return s.Store.CarryTrust(ctx, org, keyName, prev, next, ev)
}

func (s beforeFirstTrust) first() (err error) {
	s.once.Do(func() { err = s.race() })
	return err
}

// acmeTrusts reports whether org acme actively trusts version v of key k
// (0: its current version), and which version that is.
func (f *fixture) acmeTrusts(t *testing.T, v uint32) (bool, uint32) {
	t.Helper()
	k, err := f.st.GetKey(f.ctx, "k")
	if err != nil {
		t.Fatal(err)
	}
	ver, _ := k.Current()
	if v != 0 {
		ver, _ = k.Version(v)
	}
	o, err := f.st.GetOrg(f.ctx, "acme")
	if err != nil {
		t.Fatal(err)
	}
	return o.TrustsActively(ver.Fingerprint), ver.Version
}

// trustByPEM makes acme trust version v of key k by its public key (as
// `trust add --public-key`), through svc.
func (f *fixture) trustByPEM(svc *Service, v uint32) error {
	k, err := f.st.GetKey(f.ctx, "k")
	if err != nil {
		return err
	}
	ver, _ := k.Version(v)
	_, err = svc.AddTrust(f.ctx, AddTrustInput{Org: "acme", PublicKeyPEM: pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: ver.PublicKey})})
	return err
}

// TestTrustRacingRotation: however `trust add --key` and `key rotate`
// (or two rotations) interleave, the org ends up trusting the key's current
// version, so the key's new signatures verify for it. Before, the trust
// that committed after the rotation's read of the orgs stayed on the old
// version: UNTRUSTED_SIGNER for every new signature.
func TestTrustRacingRotation(t *testing.T) {
	quiet := Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
	for _, tt := range []struct {
		name string
		// setup runs before the race; run is the racing call, made on
		// a service whose first trust change lets other rotate first.
		setup func(*testing.T, *fixture)
		run   func(racing *Service, ctx context.Context) error
	}{
		{"trust add, then a rotation commits", func(*testing.T, *fixture) {}, func(racing *Service, ctx context.Context) error {
			_, err := racing.AddTrust(ctx, AddTrustInput{Org: "acme", KeyName: "k"})
			return err
		}},
		{"rotation, then another rotation commits", func(t *testing.T, f *fixture) { f.trust(t, "acme", "k") }, func(racing *Service, ctx context.Context) error {
			_, err := racing.RotateKey(ctx, "k")
			return err
		}},
		{"trust add of the current version's public key, then a rotation commits", func(*testing.T, *fixture) {}, nil},
	} {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t)
			f.createKey(t, "k", keystore.Ed25519)
			tt.setup(t, f)
			racing := New(beforeFirstTrust{Store: f.st, once: new(sync.Once), race: func() error {
				_, err := f.svc.RotateKey(f.ctx, "k")
				return err
			}}, f.keys, quiet)
			run := tt.run
			if run == nil {
				run = func(racing *Service, _ context.Context) error { return f.trustByPEM(racing, 1) }
			}
			if err := run(racing, f.ctx); err != nil {
				t.Fatal(err)
			}
			if ok, v := f.acmeTrusts(t, 0); !ok {
				t.Fatalf("acme does not trust k's current version v%d after the race", v)
			}
			d, doc := f.sign(t, "k", "after the race")
			if _, err := f.svc.Verify(f.ctx, VerifyInput{Org: "acme", Digest: d, Document: doc}); err != nil {
				t.Fatalf("a new signature by k for acme: %v", err)
			}
		})
	}
}

// TestCarryDecidedInCommit: a rotation's carrying of trust never
// overrides a decision that commits after it read the org: trust in the
// old version removed, the new version's trust removed by an operator, the
// key revoked. Before, the carry wrote from its read: the org trusted the
// new version after each of these.
func TestCarryDecidedInCommit(t *testing.T) {
	quiet := Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
	for _, tt := range []struct {
		name string
		race func(f *fixture, v1 store.TrustedKey) error
	}{
		{"trust in the old version removed", func(f *fixture, v1 store.TrustedKey) error {
			_, err := f.svc.RemoveTrust(f.ctx, "acme", v1.Fingerprint)
			return err
		}},
		{"the new version trusted, then removed by an operator", func(f *fixture, _ store.TrustedKey) error {
			tk, err := f.svc.AddTrust(f.ctx, AddTrustInput{Org: "acme", KeyName: "k"})
			if err != nil {
				return err
			}
			_, err = f.svc.RemoveTrust(f.ctx, "acme", tk.Fingerprint)
			return err
		}},
		{"the key revoked", func(f *fixture, _ store.TrustedKey) error {
			_, err := f.svc.RevokeKey(f.ctx, "k", store.ReasonSuperseded)
			return err
		}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t)
			f.createKey(t, "k", keystore.Ed25519)
			v1 := f.trust(t, "acme", "k")
			racing := New(beforeFirstTrust{Store: f.st, once: new(sync.Once), race: func() error { return tt.race(f, v1) }}, f.keys, quiet)
			out, err := racing.RotateKey(f.ctx, "k")
			if err != nil {
				t.Fatal(err)
			}
			if ok, _ := f.acmeTrusts(t, 2); ok || len(out.TrustPropagated) != 0 {
				t.Fatalf("acme trusts v2 (%v), rotation reports carrying to %v", ok, out.TrustPropagated)
			}
			recs, err := f.st.ListAudit(f.ctx, 0, 0)
			if err != nil {
				t.Fatal(err)
			}
			if last := recs[len(recs)-1]; last.Operation == "trust.add" {
				t.Fatalf("the log ends with %s %s: a carry after the racing decision", last.Operation, last.Detail)
			}
		})
	}
}

// TestCarryPastTrustAddedMeanwhile: a rotation whose carry finds the org
// already trusting the new version (a `trust add` of that version's public
// key, which carries nothing itself, committed meanwhile, after a later
// rotation read the orgs) carries on from it to the current version.
func TestCarryPastTrustAddedMeanwhile(t *testing.T) {
	f := newFixture(t)
	f.createKey(t, "k", keystore.Ed25519)
	f.trust(t, "acme", "k")
	racing := New(beforeFirstTrust{Store: f.st, once: new(sync.Once), race: func() error {
		if _, err := f.svc.RotateKey(f.ctx, "k"); err != nil { // v3, while acme trusts v1 only
			return err
		}
		return f.trustByPEM(f.svc, 2)
	}}, f.keys, Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if _, err := racing.RotateKey(f.ctx, "k"); err != nil { // v2
		t.Fatal(err)
	}
	if ok, v := f.acmeTrusts(t, 0); v != 3 || !ok {
		t.Fatalf("acme does not trust k's current version v%d", v)
	}
}

// TestTrustAddRacingRevoke: `trust add --key` that read the key active,
// committing after a `key revoke`, is refused KEY_REVOKED and trusts
// nothing; before, the org trusted the revoked version, audited after the
// revocation.
func TestTrustAddRacingRevoke(t *testing.T) {
	f := newFixture(t)
	f.createKey(t, "k", keystore.Ed25519)
	racing := New(beforeFirstTrust{Store: f.st, once: new(sync.Once), race: func() error {
		_, err := f.svc.RevokeKey(f.ctx, "k", store.ReasonSuperseded)
		return err
	}}, f.keys, Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	_, err := racing.AddTrust(f.ctx, AddTrustInput{Org: "acme", KeyName: "k"})
	if !errors.Is(err, errdefs.ErrFailedPrecondition) || errdefs.ReasonOf(err) != errdefs.ReasonKeyRevoked {
		t.Fatalf("trust add racing the revocation: %v, want KEY_REVOKED", err)
	}
	o, err := f.st.GetOrg(f.ctx, "acme")
	if err != nil {
		t.Fatal(err)
	}
	if len(o.Trusted) != 0 {
		t.Fatalf("acme trusts %d keys after the refused trust add", len(o.Trusted))
	}
}

// TestCarryStopsAtTrustGivenAlone: a carry refused because the org has an
// entry for the next version does not carry on from it when the org no
// longer trusts the earlier one: the operator removed v1 and trusted v2
// alone (by its public key), so v3 is not added for it.
func TestCarryStopsAtTrustGivenAlone(t *testing.T) {
	f := newFixture(t)
	f.createKey(t, "k", keystore.Ed25519)
	v1 := f.trust(t, "acme", "k")
	racing := New(beforeFirstTrust{Store: f.st, once: new(sync.Once), race: func() error {
		if _, err := f.svc.RotateKey(f.ctx, "k"); err != nil { // v3, while acme trusts v1 only
			return err
		}
		if _, err := f.svc.RemoveTrust(f.ctx, "acme", v1.Fingerprint); err != nil {
			return err
		}
		return f.trustByPEM(f.svc, 2)
	}}, f.keys, Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	out, err := racing.RotateKey(f.ctx, "k") // v2
	if err != nil {
		t.Fatal(err)
	}
	if ok, _ := f.acmeTrusts(t, 3); ok {
		t.Fatalf("acme trusts v3 (rotation reports %v), though it trusted v2 alone", out.TrustPropagated)
	}
}

// TestTrustChangesInvalidateCache: trust given by key name, or carried by
// a rotation, is seen by the next Verify of the same service, even with
// the org's trust view cached just before (the store calls that make them
// once bypassed the cache's invalidation).
func TestTrustChangesInvalidateCache(t *testing.T) {
	quiet := Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
	verify := func(t *testing.T, s *Service, d, doc []byte) {
		t.Helper()
		if res, err := s.Verify(context.Background(), VerifyInput{Org: "acme", Digest: d, Document: doc}); err != nil || res.Outcome != OutcomeVerified {
			t.Fatalf("Verify: %+v %v, want verified", res, err)
		}
	}
	t.Run("trust add --key", func(t *testing.T) {
		f := newFixture(t)
		f.createKey(t, "other", keystore.Ed25519)
		f.createKey(t, "k", keystore.Ed25519)
		f.trust(t, "acme", "other")
		d, doc := f.sign(t, "k", "pkg")
		if _, err := f.svc.Verify(f.ctx, VerifyInput{Org: "acme", Digest: d, Document: doc}); errdefs.ReasonOf(err) != errdefs.ReasonUntrustedSigner {
			t.Fatalf("Verify before the trust: %v, want UNTRUSTED_SIGNER", err)
		}
		f.trust(t, "acme", "k")
		verify(t, f.svc, d, doc)
	})
	t.Run("carried by a rotation", func(t *testing.T) {
		f := newFixture(t)
		f.createKey(t, "k", keystore.Ed25519)
		f.trust(t, "acme", "k")
		var racing *Service
		racing = New(beforeFirstTrust{Store: f.st, once: new(sync.Once), race: func() error {
			_, err := racing.ListTrusted(f.ctx, "acme") // cached between the rotation's commit and its carry
			return err
		}}, f.keys, quiet)
		if _, err := racing.RotateKey(f.ctx, "k"); err != nil {
			t.Fatal(err)
		}
		out, err := racing.Sign(f.ctx, SignInput{KeyName: "k", Digest: digestOf("pkg"), ArtifactName: "pkg.so"})
		if err != nil {
			t.Fatal(err)
		}
		verify(t, racing, digestOf("pkg"), out.Document)
	})
}

// cancelOnCarry cancels the caller's context as the first carry of trust
// commits: a client that gives up (its timeout, Ctrl-C) once the rotation
// has committed.
type cancelOnCarry struct {
	store.Store
	cancel context.CancelFunc
}

func (s cancelOnCarry) CarryTrust(ctx context.Context, org, keyName, prev string, next store.TrustedKey, ev store.AuditEvent) error {
	s.cancel()
	return s.Store.CarryTrust(ctx, org, keyName, prev, next, ev)
}

// TestRotationOutlivesItsCaller: a rotation whose caller gives up after
// the new version committed still carries its trust to every org that
// trusted the old one. Before, the orgs after the first were left on the
// old version (the key's new signatures UNTRUSTED_SIGNER for them).
func TestRotationOutlivesItsCaller(t *testing.T) {
	f := newFixture(t)
	f.createKey(t, "k", keystore.Ed25519)
	orgs := []string{"a.example", "b.example", "c.example"}
	for _, o := range orgs {
		f.trust(t, o, "k")
	}
	ctx, cancel := context.WithCancel(f.ctx)
	defer cancel()
	racing := New(cancelOnCarry{Store: f.st, cancel: cancel}, f.keys, Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if _, err := racing.RotateKey(ctx, "k"); err != nil {
		t.Logf("RotateKey: %v", err) // the caller is gone; what matters is the state
	}
	k, err := f.st.GetKey(f.ctx, "k")
	if err != nil {
		t.Fatal(err)
	}
	cur, _ := k.Current()
	for _, id := range orgs {
		o, err := f.st.GetOrg(f.ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		if !o.TrustsActively(cur.Fingerprint) {
			t.Errorf("org %s does not trust k's new version v%d", id, cur.Version)
		}
	}
}

// grantBeforeRemove is a store on which a grant commits between `trust
// remove` reading the org and committing.
type grantBeforeRemove struct {
	store.Store
	grant func() error
}

func (s grantBeforeRemove) RemoveTrust(ctx context.Context, org, fp string, at time.Time, ev store.AuditEvent) ([]string, error) {
	if err := s.grant(); err != nil {
		return nil, err
	}
	return s.Store.RemoveTrust(ctx, org, fp, at, ev)
}

// TestRemoveTrustRacingGrant: `trust remove` names, in its answer and its
// audit record, a grant that committed while it ran and still carries the
// key: nobody is told the key is gone while it still verifies. Before,
// both came from a read taken before the grant.
func TestRemoveTrustRacingGrant(t *testing.T) {
	f := newFixture(t)
	f.createKey(t, "k", keystore.Ed25519)
	tk := f.trust(t, "acme", "k")
	f.trust(t, "child", "k")
	racing := New(grantBeforeRemove{Store: f.st, grant: func() error { return f.svc.GrantTrust(f.ctx, "acme", "child") }},
		f.keys, Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	via, err := racing.RemoveTrust(f.ctx, "acme", tk.Fingerprint)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(via, []string{"child"}) {
		t.Fatalf("RemoveTrust answered still trusted via %v, want [child]", via)
	}
	recs, err := f.st.ListAudit(f.ctx, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	if last := recs[len(recs)-1]; last.Operation != "trust.remove" || !strings.HasSuffix(last.Detail, " still_trusted_via=child") {
		t.Fatalf("last audit record %s %q, want trust.remove naming the grant", last.Operation, last.Detail)
	}
	d, doc := f.sign(t, "k", "still trusted")
	if _, err := f.svc.Verify(f.ctx, VerifyInput{Org: "acme", Digest: d, Document: doc}); err != nil {
		t.Fatalf("a signature by k for acme, trusted through the grant: %v", err)
	}
}

// clockedCarry is a store whose every CarryTrust takes step on the
// service's clock, failing with fail if set.
type clockedCarry struct {
	store.Store
	clock *testClock
	step  time.Duration
	fail  error
	calls *int
}

func (s clockedCarry) CarryTrust(ctx context.Context, org, keyName, prev string, next store.TrustedKey, ev store.AuditEvent) error {
	*s.calls++
	s.clock.add(s.step)
	if s.fail != nil {
		return s.fail
	}
	return s.Store.CarryTrust(ctx, org, keyName, prev, next, ev)
}

// TestRotationCarriesWhileItProgresses: a rotation carries trust to every
// org however long that takes in all, so long as each carry succeeds
// within carryTimeout of the one before; once carryTimeout passes without
// one succeeding (a store that stopped answering), the orgs left are
// reported without being tried. Before, one 30 s deadline for all left
// the orgs past it on the old version, and a store failing each write
// after its timeout was tried for every org.
func TestRotationCarriesWhileItProgresses(t *testing.T) {
	orgs := []string{"a.example", "b.example", "c.example", "d.example", "e.example"}
	for _, tt := range []struct {
		name      string
		fail      error
		wantCalls int
		carried   int
	}{
		// 5 carries of 20 s: 100 s in all, each well within 30 s.
		{name: "slow store", wantCalls: len(orgs), carried: len(orgs)},
		// Two failures of 20 s: 40 s without progress; three untried.
		{name: "failing store", fail: fmt.Errorf("injected: %w", errdefs.ErrUnavailable), wantCalls: 2},
	} {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t)
			f.createKey(t, "k", keystore.Ed25519)
			for _, o := range orgs {
				f.trust(t, o, "k")
			}
			clock := &testClock{now: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
			calls := 0
			st := clockedCarry{Store: f.st, clock: clock, step: 20 * time.Second, fail: tt.fail, calls: &calls}
			svc := New(st, f.keys, Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), Now: clock.Now})
			out, err := svc.RotateKey(f.ctx, "k")
			if calls != tt.wantCalls {
				t.Fatalf("CarryTrust called %d times, want %d (RotateKey: %v)", calls, tt.wantCalls, err)
			}
			if len(out.TrustPropagated) != tt.carried {
				t.Fatalf("trust carried to %v, want %d orgs (RotateKey: %v)", out.TrustPropagated, tt.carried, err)
			}
			if tt.fail == nil {
				if err != nil {
					t.Fatalf("RotateKey: %v", err)
				}
				return
			}
			msg := fmt.Sprint(err)
			if !strings.Contains(msg, "for 5 of the orgs") || strings.Count(msg, "not tried") != 3 {
				t.Fatalf("RotateKey: %v; want every org named, the last three not tried", err)
			}
		})
	}
}
