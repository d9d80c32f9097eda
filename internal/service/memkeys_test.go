package service

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"fmt"
	"io"
	"sync"
	"sync/atomic"

	"github.com/signerd/signerd/internal/errdefs"
	"github.com/signerd/signerd/internal/keystore"
)

// memKeys is an in-memory keystore.KeyStore for the service's unit tests
// only; the daemon always signs through PKCS#11 (tested in
// keystore/pkcs11 and softhsm-test against SoftHSM2).
type memKeys struct {
	mu   sync.Mutex
	keys map[string]crypto.Signer
	// signs counts signatures made, so tests can check that refused
	// requests cost no HSM operation.
	signs atomic.Int64
	// fault, when set, corrupts every signature the HSM returns, as a
	// faulty device would (signcheck_test.go).
	fault atomic.Pointer[func([]byte) []byte]
}

type countingSigner struct {
	crypto.Signer
	n     *atomic.Int64
	fault *atomic.Pointer[func([]byte) []byte]
}

func (c countingSigner) Sign(r io.Reader, digest []byte, opts crypto.SignerOpts) ([]byte, error) {
	c.n.Add(1)
	sig, err := c.Signer.Sign(r, digest, opts)
	if f := c.fault.Load(); f != nil && err == nil {
		sig = (*f)(sig)
	}
	return sig, err
}

func newMemKeys() *memKeys { return &memKeys{keys: map[string]crypto.Signer{}} }

func (m *memKeys) CreateKey(_ context.Context, req keystore.CreateKeyRequest) (crypto.PublicKey, error) {
	var s crypto.Signer
	switch req.Algorithm {
	case keystore.Ed25519:
		_, priv, _ := ed25519.GenerateKey(rand.Reader)
		s = priv
	case keystore.ECDSAP256:
		priv, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		s = priv
	default:
		return nil, fmt.Errorf("algorithm %q: %w", req.Algorithm, errdefs.ErrInvalidArgument)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.keys[string(req.ID)] = s
	return s.Public(), nil
}

func (m *memKeys) ImportKey(_ context.Context, req keystore.ImportKeyRequest) (crypto.PublicKey, error) {
	s, ok := req.Private.(crypto.Signer)
	if !ok {
		return nil, errdefs.ErrInvalidArgument
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.keys[string(req.ID)] = s
	return s.Public(), nil
}

func (m *memKeys) Signer(_ context.Context, ref keystore.KeyRef) (crypto.Signer, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	s, ok := m.keys[string(ref.ID)]
	if !ok {
		return nil, errdefs.ErrNotFound
	}
	type equaler interface{ Equal(crypto.PublicKey) bool }
	if e, ok := s.Public().(equaler); !ok || !e.Equal(ref.Public) {
		return nil, errdefs.WithReason(errdefs.ReasonKeyMismatch, errdefs.ErrFailedPrecondition)
	}
	return countingSigner{Signer: s, n: &m.signs, fault: &m.fault}, nil
}

// swap replaces the key pair behind an ID, as a relabelled HSM object would.
func (m *memKeys) swap(id []byte) {
	m.mu.Lock()
	defer m.mu.Unlock()
	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	for k := range m.keys {
		if bytes.Equal([]byte(k), id) {
			m.keys[k] = priv
		}
	}
}

func (m *memKeys) Ping(context.Context) error { return nil }
func (m *memKeys) Close() error               { return nil }
