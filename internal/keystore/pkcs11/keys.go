//go:build cgo

package pkcs11

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"fmt"
	"log/slog"

	p11 "github.com/miekg/pkcs11"

	"github.com/signerd/signerd/internal/errdefs"
	"github.com/signerd/signerd/internal/keystore"
)

// maxIDLen bounds CKA_ID; the service uses 16 random bytes.
const maxIDLen = 64

func checkID(id []byte) error {
	if len(id) == 0 || len(id) > maxIDLen {
		return fmt.Errorf("key ID must be 1 to %d bytes, got %d: %w", maxIDLen, len(id), errdefs.ErrInvalidArgument)
	}
	return nil
}

// CreateKey generates a key pair inside the token (see keystore.KeyStore)
// and returns its public key. An existing key with the same ID is
// ErrAlreadyExists (reason KEY_EXISTS).
func (ks *KeyStore) CreateKey(ctx context.Context, req keystore.CreateKeyRequest) (crypto.PublicKey, error) {
	if err := checkID(req.ID); err != nil {
		return nil, err
	}
	if _, err := keystore.ParseAlgorithm(string(req.Algorithm)); err != nil {
		return nil, err
	}
	op := fmt.Sprintf("create %s key %x", req.Algorithm, req.ID)
	if err := ks.caps.supports(ks.cfg.TokenLabel, req.Algorithm); err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	if err := ks.begin(); err != nil {
		return nil, err
	}
	defer ks.end()
	var pub crypto.PublicKey
	err := ks.writeKey(ctx, op, req.ID, req.Algorithm, nil, func(s p11.SessionHandle) (crypto.PublicKey, error) {
		if req.Algorithm == keystore.Ed25519 {
			return ks.generateEd25519(s, req.ID, req.Label)
		}
		return ks.generateECDSA(s, req.ID, req.Label)
	}, &pub)
	if err != nil {
		return nil, toKind(op, ks.cfg.TokenLabel, err)
	}
	ks.log.Info("key created in token", slog.String("key_id", fmt.Sprintf("%x", req.ID)),
		slog.String("algorithm", string(req.Algorithm)), slog.String("key_label", req.Label),
		slog.String("fingerprint", fingerprint(pub)))
	return pub, nil
}

// writeKey runs create (a generation or an import) under recovery so that a
// retry never duplicates or loses a key: the first attempt refuses an ID in
// use; a later one, finding objects with the ID, knows an earlier attempt of
// this call made them (the caller guarantees unique IDs), adopts a complete
// pair (if its public key is want, when want is known) and otherwise
// destroys the partial one and creates again.
func (ks *KeyStore) writeKey(ctx context.Context, op string, id []byte, alg keystore.Algorithm, want crypto.PublicKey,
	create func(s p11.SessionHandle) (crypto.PublicKey, error), out *crypto.PublicKey) error {
	issued := false
	return ks.withRecovery(ctx, op, func() error {
		s, err := ks.pool.get(ctx)
		if err != nil {
			return err
		}
		pub, err := ks.writeKeyAttempt(s.h, id, alg, want, create, &issued)
		ks.pool.release(s, err)
		if err == nil {
			*out = pub
		}
		return err
	})
}

func (ks *KeyStore) writeKeyAttempt(s p11.SessionHandle, id []byte, alg keystore.Algorithm, want crypto.PublicKey,
	create func(s p11.SessionHandle) (crypto.PublicKey, error), issued *bool) (crypto.PublicKey, error) {
	if err := ks.requireLogin(s); err != nil {
		return nil, err
	}
	nPriv, nPub, err := ks.countByID(s, id)
	if err != nil {
		return nil, err
	}
	if nPriv+nPub > 0 {
		if !*issued {
			return nil, errdefs.WithReason(errdefs.ReasonKeyExists, fmt.Errorf(
				"token %q already holds a key with ID %x: %w", ks.cfg.TokenLabel, id, errdefs.ErrAlreadyExists))
		}
		if nPriv == 1 && nPub == 1 {
			pub, err := ks.publicFromToken(s, id, alg)
			if err == nil && (want == nil || pub.(interface{ Equal(crypto.PublicKey) bool }).Equal(want)) {
				return pub, nil
			}
		}
		ks.log.Warn("removing partial key left by a failed attempt", slog.String("key_id", fmt.Sprintf("%x", id)))
		if err := ks.destroyByID(s, id); err != nil {
			return nil, err
		}
	}
	*issued = true
	return create(s)
}

// Signer finds the key pair ref names, checks it against ref.Public (see
// keystore.KeyRef) and returns a signer for it: ErrNotFound (reason
// KEY_NOT_IN_TOKEN) if absent, ErrFailedPrecondition with reason KEY_MISMATCH
// if the token's key is not ref.Public, WRONG_ALGORITHM if it is of another
// kind.
func (ks *KeyStore) Signer(ctx context.Context, ref keystore.KeyRef) (crypto.Signer, error) {
	if err := checkID(ref.ID); err != nil {
		return nil, err
	}
	if err := ks.begin(); err != nil {
		return nil, err
	}
	defer ks.end()
	op := fmt.Sprintf("find %s key %x", ref.Algorithm, ref.ID)
	if err := ks.caps.supports(ks.cfg.TokenLabel, ref.Algorithm); err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	id := append([]byte(nil), ref.ID...)
	switch ref.Algorithm {
	case keystore.Ed25519:
		want, ok := ref.Public.(ed25519.PublicKey)
		if !ok || len(want) != ed25519.PublicKeySize {
			return nil, fmt.Errorf("%s: recorded public key is %T, not an Ed25519 key: %w", op, ref.Public, errdefs.ErrInvalidArgument)
		}
		want = append(ed25519.PublicKey(nil), want...)
		err := ks.withRecovery(ctx, op, func() error {
			s, err := ks.pool.get(ctx)
			if err != nil {
				return err
			}
			_, err = ks.edKeyWith(s.h, id, want)
			ks.pool.release(s, err)
			return err
		})
		if err != nil {
			return nil, toKind(op, ks.cfg.TokenLabel, err)
		}
		return &ed25519Signer{ks: ks, id: id, pub: want}, nil
	case keystore.ECDSAP256:
		want, ok := ref.Public.(*ecdsa.PublicKey)
		if !ok || want == nil || want.Curve != elliptic.P256() {
			return nil, fmt.Errorf("%s: recorded public key is %T, not a P-256 key: %w", op, ref.Public, errdefs.ErrInvalidArgument)
		}
		err := ks.withRecovery(ctx, op, func() error {
			s, err := ks.pool.get(ctx)
			if err != nil {
				return err
			}
			_, err = ks.ecKeyWith(s.h, id, want)
			ks.pool.release(s, err)
			return err
		})
		if err != nil {
			return nil, toKind(op, ks.cfg.TokenLabel, err)
		}
		return &ecdsaSigner{ks: ks, id: id, pub: want}, nil
	}
	_, err := keystore.ParseAlgorithm(string(ref.Algorithm))
	return nil, err
}
