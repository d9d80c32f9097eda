//go:build cgo

package pkcs11

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/sha256"
	"encoding/asn1"
	"fmt"
	"io"
	"math/big"

	p11 "github.com/miekg/pkcs11"

	"github.com/signerd/signerd/internal/errdefs"
	"github.com/signerd/signerd/internal/keystore"
)

// ecKey is a found and checked ECDSA key: its private handle and the
// public key the token holds (equal to the recorded one, and proven to
// belong to the private key).
type ecKey struct {
	priv p11.ObjectHandle
	pub  *ecdsa.PublicKey
	auth bool // CKA_ALWAYS_AUTHENTICATE: log in for each signature
}

// mechECDSA is CKM_ECDSA: the token signs a digest we computed. miekg only
// reads it, so one value serves every goroutine.
var mechECDSA = []*p11.Mechanism{p11.NewMechanism(p11.CKM_ECDSA, nil)}

// generateECDSA creates a P-256 key pair in the token on session s.
func (ks *KeyStore) generateECDSA(s p11.SessionHandle, id []byte, label string) (crypto.PublicKey, error) {
	pubT := append(publicKeyTemplate(id, label, p11.CKK_EC),
		p11.NewAttribute(p11.CKA_EC_PARAMS, ecParamsP256))
	privT := privateKeyTemplate(id, label, p11.CKK_EC)
	if _, _, err := ks.generateKeyPair(s,
		[]*p11.Mechanism{p11.NewMechanism(p11.CKM_EC_KEY_PAIR_GEN, nil)}, pubT, privT); err != nil {
		return nil, err
	}
	return ks.publicFromToken(s, id, keystore.ECDSAP256)
}

// ecKeyWith returns the checked key for id, from the cache or by looking it
// up on session s. As for Ed25519, a lookup compares the token's public key
// with want and checks with a signature over a random digest that the
// private key matches; nothing is cached on a mismatch.
func (ks *KeyStore) ecKeyWith(s p11.SessionHandle, id []byte, want *ecdsa.PublicKey) (ecKey, error) {
	ks.cacheMu.RLock()
	k, ok := ks.ecKeys[string(id)]
	ks.cacheMu.RUnlock()
	if ok {
		if !k.pub.Equal(want) {
			return ecKey{}, ks.mismatch(id, k.pub, want, "public key differs from the recorded one")
		}
		return k, nil
	}
	priv, kt, err := ks.lookupPrivate(s, id)
	if err != nil {
		return ecKey{}, err
	}
	if kt != p11.CKK_EC {
		return ecKey{}, ks.wrongAlgorithm(id, keystore.ECDSAP256, keyTypeName(kt))
	}
	pubAny, err := ks.publicFromToken(s, id, keystore.ECDSAP256)
	if err != nil {
		return ecKey{}, err
	}
	pub := pubAny.(*ecdsa.PublicKey)
	if !pub.Equal(want) {
		return ecKey{}, ks.mismatch(id, pub, want, "public key differs from the recorded one")
	}
	var challenge [sha256.Size]byte
	_, _ = rand.Read(challenge[:])
	auth, err := ks.alwaysAuthenticate(s, priv)
	if err != nil {
		return ecKey{}, err
	}
	sig, err := ks.signECDSA(s, priv, auth, challenge[:])
	if err != nil {
		return ecKey{}, err
	}
	if !ecdsa.VerifyASN1(want, challenge[:], sig) {
		return ecKey{}, ks.mismatch(id, pub, want, "private key does not match the public key")
	}
	k = ecKey{priv: priv, pub: pub, auth: auth}
	ks.cacheMu.Lock()
	ks.ecKeys[string(id)] = k
	ks.cacheMu.Unlock()
	return k, nil
}

// dropEC forgets id's handle if it is still the stale one.
func (ks *KeyStore) dropEC(id []byte, stale p11.ObjectHandle) {
	ks.cacheMu.Lock()
	if k, ok := ks.ecKeys[string(id)]; ok && k.priv == stale {
		delete(ks.ecKeys, string(id))
	}
	ks.cacheMu.Unlock()
}

// signECDSA signs digest with CKM_ECDSA and returns the signature in ASN.1
// DER, as crypto.Signer callers expect; the token returns r||s.
func (ks *KeyStore) signECDSA(s p11.SessionHandle, key p11.ObjectHandle, auth bool, digest []byte) ([]byte, error) {
	if err := ks.signInit(s, mechECDSA, key, auth); err != nil {
		return nil, err
	}
	raw, err := ks.ctx.Sign(s, digest)
	if err != nil {
		return nil, err
	}
	if len(raw) != 64 {
		return nil, fmt.Errorf("token %q returned a %d-byte P-256 signature: %w", ks.cfg.TokenLabel, len(raw), errdefs.ErrInternal)
	}
	der, err := asn1.Marshal(struct{ R, S *big.Int }{new(big.Int).SetBytes(raw[:32]), new(big.Int).SetBytes(raw[32:])})
	if err != nil {
		return nil, fmt.Errorf("encode ECDSA signature: %v: %w", err, errdefs.ErrInternal)
	}
	return der, nil
}

// ecdsaSigner signs digests with an ECDSA P-256 key in the token.
type ecdsaSigner struct {
	ks  *KeyStore
	id  []byte
	pub *ecdsa.PublicKey
}

// Public returns the recorded (and checked) public key.
func (s *ecdsaSigner) Public() crypto.PublicKey { return s.pub }

// Sign signs digest, which MUST be the output of opts.HashFunc() (the token
// does not hash), and returns an ASN.1 DER signature. rand is not used: the
// token draws its own nonce. Sign waits at most Config.PoolWaitTimeout for
// a session.
func (s *ecdsaSigner) Sign(_ io.Reader, digest []byte, opts crypto.SignerOpts) ([]byte, error) {
	if err := checkECDSAOpts(digest, opts); err != nil {
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
		ss, err := ks.pool.get(ctx)
		if err != nil {
			return err
		}
		k, err := ks.ecKeyWith(ss.h, s.id, s.pub)
		if err == nil {
			sig, err = ks.signECDSA(ss.h, k.priv, k.auth, digest)
			if classify(err) == classHandle {
				ks.dropEC(s.id, k.priv)
			}
		}
		ks.pool.release(ss, err)
		return err
	})
	if err != nil {
		return nil, toKind(fmt.Sprintf("sign with ECDSA key %x", s.id), ks.cfg.TokenLabel, err)
	}
	return sig, nil
}

func checkECDSAOpts(digest []byte, opts crypto.SignerOpts) error {
	if opts == nil || opts.HashFunc() == 0 {
		return fmt.Errorf("ECDSA signs a digest: opts must name its hash: %w", errdefs.ErrInvalidArgument)
	}
	h := opts.HashFunc()
	if size, ok := hashSize(h); !ok || len(digest) != size {
		return fmt.Errorf("ECDSA digest is %d bytes, not a %v digest: %w", len(digest), h, errdefs.ErrInvalidArgument)
	}
	return nil
}

// hashSize is h.Size() without its panic on unknown hashes.
func hashSize(h crypto.Hash) (size int, ok bool) {
	defer func() {
		if recover() != nil {
			size, ok = 0, false
		}
	}()
	return h.Size(), true
}
