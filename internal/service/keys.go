package service

import (
	"context"
	"crypto/rand"
	"crypto/x509"
	"errors"
	"fmt"

	"github.com/signerd/signerd/internal/errdefs"
	"github.com/signerd/signerd/internal/keystore"
	"github.com/signerd/signerd/internal/store"
)

// CreateKeyInput asks for a new named key.
type CreateKeyInput struct {
	Name      string
	Algorithm keystore.Algorithm
	Org       string
}

// CreateKey generates a key pair inside the HSM and records it as version 1
// of a new named key.
func (s *Service) CreateKey(ctx context.Context, in CreateKeyInput) (store.Key, error) {
	if err := ValidateKeyName(in.Name); err != nil {
		return store.Key{}, err
	}
	if _, err := keystore.ParseAlgorithm(string(in.Algorithm)); err != nil {
		return store.Key{}, err
	}
	if in.Org != "" {
		if err := ValidateOrg(in.Org); err != nil {
			return store.Key{}, err
		}
	}
	// Fail before touching the HSM when the name is taken, so a typo does
	// not leave an orphan key pair in the token.
	if _, err := s.store.GetKey(ctx, in.Name); err == nil {
		return store.Key{}, errdefs.WithReason(errdefs.ReasonKeyExists,
			fmt.Errorf("key %q already exists: %w", in.Name, errdefs.ErrAlreadyExists))
	} else if !errors.Is(err, errdefs.ErrNotFound) {
		return store.Key{}, err
	}
	v, err := s.newVersion(ctx, in.Name, 1, in.Algorithm)
	if err != nil {
		return store.Key{}, err
	}
	k := store.Key{
		Name:      in.Name,
		Org:       in.Org,
		Algorithm: string(in.Algorithm),
		CreatedAt: v.CreatedAt,
		Versions:  []store.KeyVersion{v},
	}
	ev := s.event(ctx, "key.create")
	ev.Key, ev.Org, ev.Detail = in.Name, in.Org, fmt.Sprintf("algorithm=%s version=1 fingerprint=%s", in.Algorithm, v.Fingerprint)
	if err := s.store.CreateKey(ctx, k, ev); err != nil {
		s.log.WarnContext(ctx, "key pair created in the HSM but not recorded; it is unused",
			"key", in.Name, "cka_id", fmt.Sprintf("%x", v.CKAID), "err", err)
		if errors.Is(err, errdefs.ErrAlreadyExists) {
			err = errdefs.WithReason(errdefs.ReasonKeyExists, err)
		}
		return store.Key{}, err
	}
	s.log.InfoContext(ctx, "key created", "key", in.Name, "algorithm", in.Algorithm, "fingerprint", v.Fingerprint)
	return k, nil
}

// newVersion generates a key pair in the HSM and describes it.
func (s *Service) newVersion(ctx context.Context, name string, version uint32, alg keystore.Algorithm) (store.KeyVersion, error) {
	id := make([]byte, 16)
	if _, err := rand.Read(id); err != nil {
		return store.KeyVersion{}, fmt.Errorf("generate CKA_ID: %w", err)
	}
	release, err := s.acquireHSM(ctx)
	if err != nil {
		return store.KeyVersion{}, err
	}
	pub, err := s.keys.CreateKey(ctx, keystore.CreateKeyRequest{
		ID:        id,
		Label:     fmt.Sprintf("signerd/%s/v%d", name, version),
		Algorithm: alg,
	})
	release()
	if err != nil {
		return store.KeyVersion{}, fmt.Errorf("create key pair in the HSM: %w", err)
	}
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return store.KeyVersion{}, fmt.Errorf("marshal public key: %w", err)
	}
	fp, err := Fingerprint(pub)
	if err != nil {
		return store.KeyVersion{}, err
	}
	return store.KeyVersion{
		Version:     version,
		CKAID:       id,
		PublicKey:   der,
		Fingerprint: fp,
		State:       store.KeyActive,
		CreatedAt:   s.now(),
	}, nil
}

// GetKey returns a key by name.
func (s *Service) GetKey(ctx context.Context, name string) (store.Key, error) {
	if err := ValidateKeyName(name); err != nil {
		return store.Key{}, err
	}
	k, err := s.store.GetKey(ctx, name)
	if errors.Is(err, errdefs.ErrNotFound) {
		return store.Key{}, keyNotFound(name)
	}
	return k, err
}

// ListKeys returns every key ordered by name.
func (s *Service) ListKeys(ctx context.Context) ([]store.Key, error) {
	return s.store.ListKeys(ctx)
}

func keyNotFound(name string) error {
	return errdefs.WithReason(errdefs.ReasonKeyNotFound,
		fmt.Errorf("key %q does not exist (signctl key list shows the keys): %w", name, errdefs.ErrNotFound))
}
