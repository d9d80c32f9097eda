//go:build cgo

package pkcs11

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"fmt"
	"io"

	"github.com/ThalesGroup/crypto11"
	p11 "github.com/miekg/pkcs11"

	"github.com/signerd/signerd/internal/errdefs"
	"github.com/signerd/signerd/internal/keystore"
)

// ecKey is a found and checked ECDSA key: a crypto11 signer from Context
// generation gen.
type ecKey struct {
	signer crypto11.Signer
	pub    *ecdsa.PublicKey
	gen    uint64
}

// generateECDSA creates a P-256 key pair through crypto11 with our
// attributes (crypto11 only adds the ones missing).
func (ks *KeyStore) generateECDSA(id []byte, label string) (crypto.PublicKey, error) {
	c11, gen := ks.currentC11()
	pub, err := crypto11.NewAttributeSetWithIDAndLabel(id, []byte(label))
	if err != nil {
		return nil, err
	}
	priv := pub.Copy()
	for _, a := range publicKeyTemplate(id, label, p11.CKK_EC) {
		_ = pub.Set(a.Type, a.Value)
	}
	for _, a := range privateKeyTemplate(id, label, p11.CKK_EC) {
		_ = priv.Set(a.Type, a.Value)
	}
	sg, err := c11.GenerateECDSAKeyPairWithAttributes(pub, priv, elliptic.P256())
	if err != nil {
		return nil, ks.staleOr(gen, err)
	}
	p, ok := sg.Public().(*ecdsa.PublicKey)
	if !ok {
		return nil, fmt.Errorf("generated key %x has a %T public key: %w", id, sg.Public(), errdefs.ErrInternal)
	}
	return p, nil
}

// staleOr marks err as stale when the crypto11 Context of generation gen
// has been replaced since: its failure says nothing about the new one.
func (ks *KeyStore) staleOr(gen uint64, err error) error {
	if ks.c11Generation() != gen {
		return fmt.Errorf("%w: %w", errStale, err)
	}
	return err
}

// ecKey returns the checked key for id, from the cache or by looking it up.
// As for Ed25519, a lookup compares the token's public key with want and
// checks with a signature over a random digest that the private key
// matches; nothing is cached on a mismatch.
func (ks *KeyStore) ecKey(ctx context.Context, id []byte, want *ecdsa.PublicKey) (ecKey, error) {
	c11, gen := ks.currentC11()
	ks.cacheMu.RLock()
	k, ok := ks.ecKeys[string(id)]
	ks.cacheMu.RUnlock()
	if ok && k.gen == gen {
		if !k.pub.Equal(want) {
			return ecKey{}, ks.mismatch(id, k.pub, want, "public key differs from the recorded one")
		}
		return k, nil
	}

	// Check the private object ourselves first: crypto11 cannot tell "not
	// found" from "not logged in", and reports other key types vaguely.
	s, err := ks.pool.get(ctx)
	if err != nil {
		return ecKey{}, err
	}
	_, kt, err := ks.lookupPrivate(s.h, id)
	ks.pool.release(s, err)
	if err != nil {
		return ecKey{}, err
	}
	if kt != p11.CKK_EC {
		return ecKey{}, ks.wrongAlgorithm(id, keystore.ECDSAP256, keyTypeName(kt))
	}

	signers, err := c11.FindKeyPairs(id, nil)
	if err != nil {
		return ecKey{}, ks.staleOr(gen, err)
	}
	switch len(signers) {
	case 0:
		return ecKey{}, fmt.Errorf("key %x in token %q has no usable public key object: %w", id, ks.cfg.TokenLabel, errdefs.ErrFailedPrecondition)
	case 1:
	default:
		return ecKey{}, ks.ambiguous(id, "key pair", len(signers))
	}
	sg := signers[0]
	pub, ok := sg.Public().(*ecdsa.PublicKey)
	if !ok || pub.Curve != elliptic.P256() {
		return ecKey{}, ks.wrongAlgorithm(id, keystore.ECDSAP256, fmt.Sprintf("%T", sg.Public()))
	}
	if !pub.Equal(want) {
		return ecKey{}, ks.mismatch(id, pub, want, "public key differs from the recorded one")
	}
	var challenge [sha256.Size]byte
	_, _ = rand.Read(challenge[:])
	sig, err := sg.Sign(nil, challenge[:], crypto.SHA256)
	if err != nil {
		return ecKey{}, ks.staleOr(gen, err)
	}
	if !ecdsa.VerifyASN1(want, challenge[:], sig) {
		return ecKey{}, ks.mismatch(id, pub, want, "private key does not match the public key")
	}
	k = ecKey{signer: sg, pub: pub, gen: gen}
	ks.cacheMu.Lock()
	ks.ecKeys[string(id)] = k
	ks.cacheMu.Unlock()
	return k, nil
}

// dropEC forgets id's signer if it is still the stale one.
func (ks *KeyStore) dropEC(id []byte, stale crypto11.Signer) {
	ks.cacheMu.Lock()
	if k, ok := ks.ecKeys[string(id)]; ok && k.signer == stale {
		delete(ks.ecKeys, string(id))
	}
	ks.cacheMu.Unlock()
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
		k, err := ks.ecKey(ctx, s.id, s.pub)
		if err != nil {
			return err
		}
		sig, err = k.signer.Sign(nil, digest, opts)
		if err != nil {
			err = ks.staleOr(k.gen, err)
			if classify(err) == classHandle {
				ks.dropEC(s.id, k.signer)
			}
		}
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
