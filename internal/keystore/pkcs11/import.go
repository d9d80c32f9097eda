//go:build cgo

package pkcs11

import (
	"bytes"
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

// ImportKey stores req.Private in the token as a sensitive, non-extractable
// key pair and returns its public key. Our copies of the private value are
// zeroed before returning (miekg's C copy is freed unzeroed: that is out of
// our hands).
func (ks *KeyStore) ImportKey(ctx context.Context, req keystore.ImportKeyRequest) (crypto.PublicKey, error) {
	if err := checkID(req.ID); err != nil {
		return nil, err
	}
	if _, err := keystore.ParseAlgorithm(string(req.Algorithm)); err != nil {
		return nil, err
	}
	op := fmt.Sprintf("import %s key %x", req.Algorithm, req.ID)
	if err := ks.caps.supports(ks.cfg.TokenLabel, req.Algorithm); err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	pubT, privT, want, secret, err := importTemplates(req)
	defer clear(secret)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	if err := ks.begin(); err != nil {
		return nil, err
	}
	defer ks.end()
	var pub crypto.PublicKey
	err = ks.writeKey(ctx, op, req.ID, req.Algorithm, want, func(s p11.SessionHandle) (crypto.PublicKey, error) {
		pubH, err := ks.createObject(s, pubT)
		if err != nil {
			return nil, err
		}
		if _, err := ks.createObject(s, privT); err != nil {
			// Best effort: a retry cleans up what this leaves.
			if derr := ks.ctx.DestroyObject(s, pubH); derr != nil {
				ks.log.Warn("the public key of a failed import is left in the token", slog.String("key_id", fmt.Sprintf("%x", req.ID)), slog.Any("err", derr))
			}
			return nil, err
		}
		return want, nil
	}, &pub)
	if err != nil {
		return nil, toKind(op, ks.cfg.TokenLabel, err)
	}
	ks.log.Info("key imported into token", slog.String("key_id", fmt.Sprintf("%x", req.ID)),
		slog.String("algorithm", string(req.Algorithm)), slog.String("key_label", req.Label),
		slog.String("fingerprint", fingerprint(pub)))
	return pub, nil
}

// importTemplates builds the objects for req. secret is the private value
// the private template references; the caller MUST clear it.
func importTemplates(req keystore.ImportKeyRequest) (pubT, privT []*p11.Attribute, want crypto.PublicKey, secret []byte, err error) {
	switch req.Algorithm {
	case keystore.Ed25519:
		var priv ed25519.PrivateKey
		switch k := req.Private.(type) {
		case ed25519.PrivateKey:
			priv = k
		case *ed25519.PrivateKey:
			if k != nil {
				priv = *k
			}
		}
		if len(priv) != ed25519.PrivateKeySize {
			return nil, nil, nil, nil, fmt.Errorf("private key is %T, not an ed25519.PrivateKey: %w", req.Private, errdefs.ErrInvalidArgument)
		}
		secret = bytes.Clone(priv[:ed25519.SeedSize]) // not Seed(): its copy could not be cleared
		derived := ed25519.NewKeyFromSeed(secret)
		consistent := bytes.Equal(derived[ed25519.SeedSize:], priv[ed25519.SeedSize:])
		clear(derived)
		if !consistent {
			return nil, nil, nil, secret, fmt.Errorf("ed25519 private key: public half does not match the seed: %w", errdefs.ErrInvalidArgument)
		}
		pub := ed25519.PublicKey(bytes.Clone(priv[ed25519.SeedSize:]))
		pubT = append(publicKeyTemplate(req.ID, req.Label, ckkECEdwards),
			p11.NewAttribute(p11.CKA_EC_PARAMS, ecParamsEd25519),
			p11.NewAttribute(p11.CKA_EC_POINT, wrapPoint(pub)))
		privT = append(privateKeyTemplate(req.ID, req.Label, ckkECEdwards),
			p11.NewAttribute(p11.CKA_EC_PARAMS, ecParamsEd25519),
			p11.NewAttribute(p11.CKA_VALUE, secret))
		return pubT, privT, pub, secret, nil

	case keystore.ECDSAP256:
		priv, ok := req.Private.(*ecdsa.PrivateKey)
		if !ok || priv == nil || priv.Curve != elliptic.P256() {
			return nil, nil, nil, nil, fmt.Errorf("private key is %T, not a P-256 *ecdsa.PrivateKey: %w", req.Private, errdefs.ErrInvalidArgument)
		}
		// Bytes is the fixed-length (32-byte) big-endian D that CKA_VALUE wants.
		secret, err = priv.Bytes()
		if err != nil {
			return nil, nil, nil, nil, fmt.Errorf("ecdsa private key: %v: %w", err, errdefs.ErrInvalidArgument)
		}
		// Check that the public half belongs to D, as ECDH recomputes it.
		ek, err := priv.ECDH()
		if err != nil {
			return nil, nil, nil, secret, fmt.Errorf("ecdsa private key: %v: %w", err, errdefs.ErrInvalidArgument)
		}
		point, err := priv.PublicKey.Bytes()
		if err != nil || !bytes.Equal(ek.PublicKey().Bytes(), point) {
			return nil, nil, nil, secret, fmt.Errorf("ecdsa private key: public half does not match D: %w", errdefs.ErrInvalidArgument)
		}
		pubCopy := priv.PublicKey
		pub := &pubCopy
		pubT = append(publicKeyTemplate(req.ID, req.Label, p11.CKK_EC),
			p11.NewAttribute(p11.CKA_EC_PARAMS, ecParamsP256),
			p11.NewAttribute(p11.CKA_EC_POINT, wrapPoint(point)))
		privT = append(privateKeyTemplate(req.ID, req.Label, p11.CKK_EC),
			p11.NewAttribute(p11.CKA_EC_PARAMS, ecParamsP256),
			p11.NewAttribute(p11.CKA_VALUE, secret))
		return pubT, privT, pub, secret, nil
	}
	return nil, nil, nil, nil, fmt.Errorf("algorithm %q: %w", req.Algorithm, errdefs.ErrInvalidArgument)
}
