package supervised

import (
	"context"
	"crypto"
	"io"
	"sync"

	"github.com/signerd/signerd/internal/keystore"
)

// Signer implements keystore.KeyStore. The signer it returns outlives
// reconnections: after one, its first Sign finds the key again in the new
// store, which checks it against ref.Public.
func (s *KeyStore) Signer(ctx context.Context, ref keystore.KeyRef) (crypto.Signer, error) {
	inner, gen, err := s.acquire()
	if err != nil {
		return nil, err
	}
	is, err := inner.Signer(ctx, ref)
	if err != nil {
		return nil, s.check(ctx, inner, gen, err)
	}
	ref.ID = append([]byte(nil), ref.ID...)
	return &signer{s: s, ref: ref, pub: is.Public(), inner: is, gen: gen}, nil
}

// signer is a crypto.Signer bound to a key, not to one underlying store.
type signer struct {
	s   *KeyStore
	ref keystore.KeyRef
	pub crypto.PublicKey // checked equal to ref.Public by the store

	mu    sync.Mutex
	inner crypto.Signer // from the store of generation gen
	gen   uint64
}

// Public returns the key's public half.
func (x *signer) Public() crypto.PublicKey { return x.pub }

// Sign signs on the current store, failing fast while the token is down.
func (x *signer) Sign(rand io.Reader, msg []byte, opts crypto.SignerOpts) ([]byte, error) {
	inner, gen, err := x.s.acquire()
	if err != nil {
		return nil, err
	}
	// crypto.Signer has no context; the underlying store bounds its own
	// waits (its session pool timeout).
	ctx := context.Background()
	is, err := x.signerFor(ctx, inner, gen)
	if err != nil {
		return nil, x.s.check(ctx, inner, gen, err)
	}
	sig, err := is.Sign(rand, msg, opts)
	if err != nil {
		return nil, x.s.check(ctx, inner, gen, err)
	}
	return sig, nil
}

// signerFor returns the underlying signer for the store of generation gen,
// finding the key in it if the one held is from an older store.
func (x *signer) signerFor(ctx context.Context, inner keystore.KeyStore, gen uint64) (crypto.Signer, error) {
	x.mu.Lock()
	defer x.mu.Unlock()
	if x.gen == gen {
		return x.inner, nil
	}
	is, err := inner.Signer(ctx, x.ref)
	if err != nil {
		return nil, err
	}
	x.inner, x.gen = is, gen
	return is, nil
}
