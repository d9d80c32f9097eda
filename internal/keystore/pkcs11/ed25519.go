//go:build cgo

package pkcs11

import (
	"context"
	"crypto"
	"crypto/ed25519"
	"crypto/rand"
	"fmt"
	"io"

	p11 "github.com/miekg/pkcs11"

	"github.com/signerd/signerd/internal/errdefs"
	"github.com/signerd/signerd/internal/keystore"
)

// edKey is a found and checked Ed25519 key: its private handle and the
// public key the token holds (equal to the recorded one, and proven to
// belong to the private key).
type edKey struct {
	priv p11.ObjectHandle
	pub  ed25519.PublicKey
	auth bool // CKA_ALWAYS_AUTHENTICATE: log in for each signature
}

// generateEd25519 creates an Ed25519 key pair in the token on session s.
func (ks *KeyStore) generateEd25519(s p11.SessionHandle, id []byte, label string) (crypto.PublicKey, error) {
	pubT := append(publicKeyTemplate(id, label, ckkECEdwards),
		p11.NewAttribute(p11.CKA_EC_PARAMS, ecParamsEd25519))
	privT := privateKeyTemplate(id, label, ckkECEdwards)
	pubH, _, err := ks.generateKeyPair(s,
		[]*p11.Mechanism{p11.NewMechanism(ckmECEdwardsKeyPairGen, nil)}, pubT, privT)
	if err != nil {
		return nil, err
	}
	point, err := getAttr(ks.ctx, s, pubH, p11.CKA_EC_POINT)
	if err != nil {
		return nil, err
	}
	raw, err := unwrapPoint(point, ed25519.PublicKeySize)
	if err != nil {
		return nil, fmt.Errorf("generated key %x: %v: %w", id, err, errdefs.ErrInternal)
	}
	return ed25519.PublicKey(raw), nil
}

// edKeyWith returns the checked key for id, from the cache or by looking it
// up on session s. A lookup compares the token's public key with want and
// makes the private key sign a random challenge that must verify under
// want, so that neither a swapped public object nor a swapped private one
// can redirect signatures; nothing is cached on a mismatch.
func (ks *KeyStore) edKeyWith(s p11.SessionHandle, id []byte, want ed25519.PublicKey) (edKey, error) {
	ks.cacheMu.RLock()
	k, ok := ks.edKeys[string(id)]
	ks.cacheMu.RUnlock()
	if ok {
		if !k.pub.Equal(want) {
			return edKey{}, ks.mismatch(id, k.pub, want, "public key differs from the recorded one")
		}
		return k, nil
	}
	priv, kt, err := ks.lookupPrivate(s, id)
	if err != nil {
		return edKey{}, err
	}
	if kt != ckkECEdwards {
		return edKey{}, ks.wrongAlgorithm(id, keystore.Ed25519, keyTypeName(kt))
	}
	pubAny, err := ks.publicFromToken(s, id, keystore.Ed25519)
	if err != nil {
		return edKey{}, err
	}
	pub := pubAny.(ed25519.PublicKey)
	if !pub.Equal(want) {
		return edKey{}, ks.mismatch(id, pub, want, "public key differs from the recorded one")
	}
	challenge := make([]byte, 32)
	_, _ = rand.Read(challenge)
	auth, err := ks.alwaysAuthenticate(s, priv)
	if err != nil {
		return edKey{}, err
	}
	sig, err := ks.signEd25519(s, priv, auth, challenge)
	if err != nil {
		return edKey{}, err
	}
	if !ed25519.Verify(want, challenge, sig) {
		return edKey{}, ks.mismatch(id, pub, want, "private key does not match the public key")
	}
	k = edKey{priv: priv, pub: pub, auth: auth}
	ks.cacheMu.Lock()
	ks.edKeys[string(id)] = k
	ks.cacheMu.Unlock()
	return k, nil
}

// dropEd forgets id's handle if it is still the stale one, so that a key
// another goroutine has just found again is kept.
func (ks *KeyStore) dropEd(id []byte, stale p11.ObjectHandle) {
	ks.cacheMu.Lock()
	if k, ok := ks.edKeys[string(id)]; ok && k.priv == stale {
		delete(ks.edKeys, string(id))
	}
	ks.cacheMu.Unlock()
}

func (ks *KeyStore) signEd25519(s p11.SessionHandle, key p11.ObjectHandle, auth bool, msg []byte) ([]byte, error) {
	if err := ks.signInit(s, mechEdDSA, key, auth); err != nil {
		return nil, err
	}
	sig, err := ks.ctx.Sign(s, msg)
	if err != nil {
		return nil, err
	}
	if len(sig) != ed25519.SignatureSize {
		return nil, fmt.Errorf("token %q returned a %d-byte Ed25519 signature: %w", ks.cfg.TokenLabel, len(sig), errdefs.ErrInternal)
	}
	return sig, nil
}

// ed25519Signer signs with an Ed25519 key in the token.
type ed25519Signer struct {
	ks  *KeyStore
	id  []byte
	pub ed25519.PublicKey
}

// Public returns the recorded (and checked) public key.
func (s *ed25519Signer) Public() crypto.PublicKey { return s.pub }

// Sign signs msg itself with plain Ed25519 (RFC 8032, PureEdDSA). opts MUST
// be crypto.Hash(0) or *ed25519.Options{} without hash or context: the
// pre-hashed and context variants are refused rather than silently
// producing a signature of another kind. rand is not used (Ed25519 is
// deterministic). Sign waits at most Config.PoolWaitTimeout for a session.
func (s *ed25519Signer) Sign(_ io.Reader, msg []byte, opts crypto.SignerOpts) ([]byte, error) {
	if err := checkEd25519Opts(opts); err != nil {
		return nil, err
	}
	ks := s.ks
	if err := ks.begin(); err != nil {
		return nil, err
	}
	defer ks.end()
	ctx := context.Background()
	var sig []byte
	err := ks.withRecovery(ctx, "sign", func() error {
		sess, err := ks.pool.get(ctx)
		if err != nil {
			return err
		}
		k, err := ks.edKeyWith(sess.h, s.id, s.pub)
		if err == nil {
			sig, err = ks.signEd25519(sess.h, k.priv, k.auth, msg)
			if classify(err) == classHandle {
				ks.dropEd(s.id, k.priv)
			}
		}
		ks.pool.release(sess, err)
		return err
	})
	if err != nil {
		return nil, toKind(fmt.Sprintf("sign with Ed25519 key %x", s.id), ks.cfg.TokenLabel, err)
	}
	return sig, nil
}

func checkEd25519Opts(opts crypto.SignerOpts) error {
	if opts == nil {
		return nil
	}
	if o, ok := opts.(*ed25519.Options); ok && o.Context != "" {
		return fmt.Errorf("only plain Ed25519 is supported, not Ed25519ctx (opts carry a context): %w", errdefs.ErrInvalidArgument)
	}
	if h := opts.HashFunc(); h != 0 {
		return fmt.Errorf("only plain Ed25519 is supported, which signs the message itself, but opts name hash %v (Ed25519ph): %w", h, errdefs.ErrInvalidArgument)
	}
	return nil
}
