package service

import (
	"context"
	"crypto"
	"errors"
	"sync"
	"sync/atomic"
	"time"

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
	views map[string]cachedView
	byFP  map[string]cachedKey
	named map[string]cachedKey
	// signers holds, by key name, the current version and a signer for it:
	// Sign and SignSkill then neither parse the recorded public key nor
	// ask the key store for the key on every call. The key store's signers
	// outlive HSM reconnections (keystore/supervised), so only a state
	// change (rotation, revocation) makes an entry stale.
	signers map[string]cachedSigner
}

type cachedSigner struct {
	gen    uint64
	key    store.Key
	ver    store.KeyVersion
	signer crypto.Signer
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
	return &cache{views: map[string]cachedView{}, byFP: map[string]cachedKey{}, named: map[string]cachedKey{}, signers: map[string]cachedSigner{}}
}

// invalidate drops every entry: called after any successful state change.
func (c *cache) invalidate() {
	c.gen.Add(1)
	c.mu.Lock()
	clear(c.views)
	clear(c.byFP)
	clear(c.named)
	clear(c.signers)
	c.mu.Unlock()
}

// cachedTrustView returns the org's resolved trust.
func (s *Service) cachedTrustView(ctx context.Context, org string) (TrustView, error) {
	gen := s.cache.gen.Load()
	s.cache.mu.RLock()
	e, ok := s.cache.views[org]
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
		s.cache.views[org] = cachedView{gen: gen, view: v}
	}
	s.cache.mu.Unlock()
	return v, nil
}

// cachedKeyByFingerprint returns signerd's key version with the fingerprint;
// found is false when no key of ours has it.
func (s *Service) cachedKeyByFingerprint(ctx context.Context, fp string) (cachedKey, error) {
	gen := s.cache.gen.Load()
	s.cache.mu.RLock()
	e, ok := s.cache.byFP[fp]
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
		s.cache.byFP[fp] = e
	}
	s.cache.mu.Unlock()
	return e, nil
}

// cachedKeyByName returns a key by name (ErrNotFound wrapped as GetKey does).
func (s *Service) cachedKeyByName(ctx context.Context, name string) (store.Key, error) {
	gen := s.cache.gen.Load()
	s.cache.mu.RLock()
	e, ok := s.cache.named[name]
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
		s.cache.named[name] = cachedKey{gen: gen, found: true, key: k}
	}
	s.cache.mu.Unlock()
	return k, nil
}

// invalidatingStore is the service's view of the store: every successful
// state change invalidates the cache, and every audit event is bounded and
// made printable (clipEvent), so no path can forget either.
type invalidatingStore struct {
	store.Store
	c *cache
}

func (s invalidatingStore) done(err error) error {
	if err == nil {
		s.c.invalidate()
	}
	return err
}

func (s invalidatingStore) CreateKey(ctx context.Context, k store.Key, ev store.AuditEvent) error {
	return s.done(s.Store.CreateKey(ctx, k, clipEvent(ev)))
}

func (s invalidatingStore) AddKeyVersion(ctx context.Context, name string, v store.KeyVersion, ev store.AuditEvent) error {
	return s.done(s.Store.AddKeyVersion(ctx, name, v, clipEvent(ev)))
}

func (s invalidatingStore) RevokeKeyVersions(ctx context.Context, name string, r store.RevocationReason, at time.Time, ev store.AuditEvent) error {
	return s.done(s.Store.RevokeKeyVersions(ctx, name, r, at, clipEvent(ev)))
}

func (s invalidatingStore) TrustKey(ctx context.Context, org string, k store.TrustedKey, ev store.AuditEvent) error {
	return s.done(s.Store.TrustKey(ctx, org, k, clipEvent(ev)))
}

func (s invalidatingStore) RemoveTrust(ctx context.Context, org, fp string, at time.Time, ev store.AuditEvent) error {
	return s.done(s.Store.RemoveTrust(ctx, org, fp, at, clipEvent(ev)))
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
