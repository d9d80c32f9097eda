package service

import (
	"context"
	"crypto"
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"github.com/signerd/signerd/internal/eccheck"
	"github.com/signerd/signerd/internal/edcheck"
	"github.com/signerd/signerd/internal/errdefs"
	"github.com/signerd/signerd/internal/store"
)

// cache keeps what the hot paths (Verify on every loader start, Sign for
// every artifact) read on each call — an org's resolved trust, keys by name
// and by fingerprint — out of the database.
//
// Every state change made through the service bumps a generation; an entry
// is used only if it was computed in the current generation. A reader that
// raced a writer tags its entry with the generation it started in, so a
// stale entry can never outlive the write that made it stale.
type cache struct {
	gen   atomic.Uint64
	mu    sync.RWMutex
	views *boundedMap[string, cachedView]
	byFP  *boundedMap[string, cachedKey]
	named *boundedMap[string, cachedKey]
	// signers holds, by key name, the current version and a signer for it:
	// Sign and SignSkill then neither parse the recorded public key nor
	// ask the key store for the key on every call. The key store's signers
	// outlive HSM reconnections (keystore/supervised), so only a state
	// change (rotation, revocation) makes an entry stale.
	signers *boundedMap[string, cachedSigner]
}

// Bounds of the caches. Entries are only ever things that exist — orgs
// someone configured, signerd's own keys, fingerprints an org trusts — so
// callers cannot add entries by asking about made-up names; the bounds
// hold even so, whatever the number of orgs and keys. A view's size grows
// with the keys an org trusts, hence the byte bound.
const (
	maxCachedViews     = 4096
	maxCachedViewBytes = 16 << 20
	maxCachedKeys      = 4096
	maxCachedKeyBytes  = 8 << 20
	// maxCachedSignerBytes bounds the signers: an Ed25519 key's check
	// tables are edcheck.VerifierBytes (480 KiB), so 64 MiB keeps the
	// tables of about 130 Ed25519 keys, more than sign at once here.
	// Signers are signerd's own keys only, which callers cannot add.
	maxCachedSignerBytes = 64 << 20
)

type cachedSigner struct {
	gen    uint64
	key    store.Key
	ver    store.KeyVersion
	signer crypto.Signer
	// check verifies the HSM's Ed25519 signatures before release, with
	// crypto/ed25519's rule on tables of the key's multiples (internal/
	// edcheck): nil for other algorithms.
	check *edcheck.Verifier
	// fingerprint is an ECDSA key's SchemaPin fingerprint (skill.Fingerprint
	// of its public key), the default signer_kid of every document it
	// signs: computed once rather than re-encoding the key per signature.
	fingerprint string
	// ecCheck verifies an ECDSA P-256 key's signatures before release, with
	// crypto/ecdsa's rule on tables of the key's multiples (internal/
	// eccheck): nil for other algorithms.
	ecCheck *eccheck.Verifier
}

type cachedView struct {
	gen  uint64
	view TrustView
}

type cachedKey struct {
	gen   uint64
	found bool
	key   store.Key
	ver   store.KeyVersion
	pub   crypto.PublicKey // parsed ver.PublicKey, for by-fingerprint entries
}

func newCache() *cache {
	return &cache{
		views: newBoundedMap(maxCachedViews, maxCachedViewBytes, func(org string, v cachedView) int { return len(org) + viewSize(v.view) }),
		byFP:  newBoundedMap(maxCachedKeys, maxCachedKeyBytes, func(fp string, k cachedKey) int { return len(fp) + keySize(k.key) }),
		named: newBoundedMap(maxCachedKeys, maxCachedKeyBytes, func(name string, k cachedKey) int { return len(name) + keySize(k.key) }),
		signers: newBoundedMap(maxCachedKeys, maxCachedSignerBytes, func(name string, k cachedSigner) int {
			n := len(name) + keySize(k.key) + 512 // the signer and its public key
			if k.check != nil {
				n += edcheck.VerifierBytes
			}
			if k.ecCheck != nil {
				n += eccheck.VerifierBytes
			}
			return n
		}),
	}
}

// entryOverhead approximates what a map entry and a struct cost beyond
// the bytes of their strings and slices.
const entryOverhead = 128

// viewSize approximates the bytes a resolved trust view holds.
func viewSize(v TrustView) int {
	n := entryOverhead + len(v.Org)
	for _, k := range v.Keys {
		n += entryOverhead + len(k.Fingerprint) + len(k.Algorithm) + 2*len(k.PublicKey) + len(k.KeyName) + len(k.ViaOrg)
	}
	for _, o := range v.GrantedOrgs {
		n += 16 + len(o)
	}
	for fp, k := range v.removed {
		n += entryOverhead + len(fp) + len(k.PublicKey) + len(k.KeyName)
	}
	return n
}

// keySize approximates the bytes a key record holds.
func keySize(k store.Key) int {
	n := entryOverhead + len(k.Name) + len(k.Org) + len(k.Algorithm)
	for _, v := range k.Versions {
		n += entryOverhead + len(v.Fingerprint) + len(v.CKAID) + len(v.PublicKey)
	}
	return n
}

// invalidate drops every entry: called after any successful state change.
func (c *cache) invalidate() {
	c.gen.Add(1)
	c.mu.Lock()
	c.views.reset()
	c.byFP.reset()
	c.named.reset()
	c.signers.reset()
	c.mu.Unlock()
}

// cachedTrustView returns the org's resolved trust.
func (s *Service) cachedTrustView(ctx context.Context, org string) (TrustView, error) {
	gen := s.cache.gen.Load()
	s.cache.mu.RLock()
	e, ok := s.cache.views.get(org)
	s.cache.mu.RUnlock()
	if ok && e.gen == gen {
		return e.view, nil
	}
	v, err := s.trustView(ctx, org)
	if err != nil || !v.Configured {
		// Never cache what does not exist: any caller may ask about any
		// number of made-up orgs.
		return v, err
	}
	s.cache.mu.Lock()
	if s.cache.gen.Load() == gen {
		s.cache.views.put(org, cachedView{gen: gen, view: v})
	}
	s.cache.mu.Unlock()
	return v, nil
}

// cachedKeyByFingerprint returns signerd's key version with the fingerprint;
// found is false when no key of ours has it. Verify asks only about
// fingerprints the org trusts (an admin's choice, not a caller's), so a
// "not ours" answer — a vendor key trusted by its PEM — is cached too.
func (s *Service) cachedKeyByFingerprint(ctx context.Context, fp string) (cachedKey, error) {
	gen := s.cache.gen.Load()
	s.cache.mu.RLock()
	e, ok := s.cache.byFP.get(fp)
	s.cache.mu.RUnlock()
	if ok && e.gen == gen {
		return e, nil
	}
	k, ver, err := s.store.FindKeyVersion(ctx, fp)
	e = cachedKey{gen: gen}
	switch {
	case err == nil:
		e.found, e.key, e.ver = true, k, ver
	case errors.Is(err, errdefs.ErrNotFound):
	default:
		return e, err
	}
	s.cache.mu.Lock()
	if s.cache.gen.Load() == gen {
		s.cache.byFP.put(fp, e)
	}
	s.cache.mu.Unlock()
	return e, nil
}

// cachedKeyByName returns a key by name (ErrNotFound wrapped as GetKey does).
func (s *Service) cachedKeyByName(ctx context.Context, name string) (store.Key, error) {
	gen := s.cache.gen.Load()
	s.cache.mu.RLock()
	e, ok := s.cache.named.get(name)
	s.cache.mu.RUnlock()
	if ok && e.gen == gen {
		return e.key, nil
	}
	k, err := s.GetKey(ctx, name)
	if err != nil {
		return k, err
	}
	s.cache.mu.Lock()
	if s.cache.gen.Load() == gen {
		s.cache.named.put(name, cachedKey{gen: gen, found: true, key: k})
	}
	s.cache.mu.Unlock()
	return k, nil
}

// invalidatingStore is the service's view of the store: every state change
// (and every failure that may have been one) invalidates the cache, and every audit event is bounded and
// made printable (clipEvent), so no path can forget either.
type invalidatingStore struct {
	store.Store
	c *cache
}

// done invalidates the cache after every state-changing call, failed ones
// too: a failure may have followed the commit (a read after bbolt's commit
// failing, an etcd outcome unknown that did commit), and a needless
// invalidation costs only the next call's reads.
func (s invalidatingStore) done(err error) error {
	s.c.invalidate()
	return err
}

func (s invalidatingStore) CreateKey(ctx context.Context, k store.Key, ev store.AuditEvent) error {
	return s.done(s.Store.CreateKey(ctx, k, clipEvent(ev)))
}

func (s invalidatingStore) AddKeyVersion(ctx context.Context, name string, v store.KeyVersion, ev store.AuditEvent) error {
	return s.done(s.Store.AddKeyVersion(ctx, name, v, clipEvent(ev)))
}

func (s invalidatingStore) RevokeKeyVersions(ctx context.Context, name string, r store.RevocationReason, at time.Time, ev store.AuditEvent) (store.RevocationReason, error) {
	from, err := s.Store.RevokeKeyVersions(ctx, name, r, at, clipEvent(ev))
	return from, s.done(err)
}

func (s invalidatingStore) TrustKey(ctx context.Context, org string, k store.TrustedKey, ev store.AuditEvent) error {
	return s.done(s.Store.TrustKey(ctx, org, k, clipEvent(ev)))
}

func (s invalidatingStore) TrustKeyVersion(ctx context.Context, org, keyName string, k store.TrustedKey, ev store.AuditEvent) error {
	return s.done(s.Store.TrustKeyVersion(ctx, org, keyName, k, clipEvent(ev)))
}

func (s invalidatingStore) CarryTrust(ctx context.Context, org, keyName, prev string, next store.TrustedKey, ev store.AuditEvent) error {
	return s.done(s.Store.CarryTrust(ctx, org, keyName, prev, next, clipEvent(ev)))
}

func (s invalidatingStore) RemoveTrust(ctx context.Context, org, fp string, at time.Time, ev store.AuditEvent) ([]string, error) {
	via, err := s.Store.RemoveTrust(ctx, org, fp, at, clipEvent(ev))
	return via, s.done(err)
}

func (s invalidatingStore) GrantTrust(ctx context.Context, parent, child string, at time.Time, ev store.AuditEvent) error {
	return s.done(s.Store.GrantTrust(ctx, parent, child, at, clipEvent(ev)))
}

func (s invalidatingStore) RevokeGrant(ctx context.Context, parent, child string, at time.Time, ev store.AuditEvent) error {
	return s.done(s.Store.RevokeGrant(ctx, parent, child, at, clipEvent(ev)))
}

func (s invalidatingStore) SetRequireSignatures(ctx context.Context, org string, require bool, ev store.AuditEvent) error {
	return s.done(s.Store.SetRequireSignatures(ctx, org, require, clipEvent(ev)))
}

func (s invalidatingStore) PutSignature(ctx context.Context, rec store.SignatureRecord, ev store.AuditEvent) error {
	return s.Store.PutSignature(ctx, rec, clipEvent(ev))
}

func (s invalidatingStore) AppendAudit(ctx context.Context, ev store.AuditEvent) (store.AuditRecord, error) {
	return s.Store.AppendAudit(ctx, clipEvent(ev))
}

func (s invalidatingStore) SetAuditKey(ctx context.Context, k store.Key, ev store.AuditEvent) error {
	return s.done(s.Store.SetAuditKey(ctx, k, clipEvent(ev)))
}

func (s invalidatingStore) SetLogKey(ctx context.Context, k store.Key, ev store.AuditEvent) error {
	return s.done(s.Store.SetLogKey(ctx, k, clipEvent(ev)))
}
