package service

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/signerd/signerd/internal/eccheck"
	"github.com/signerd/signerd/internal/edcheck"
	"github.com/signerd/signerd/internal/errdefs"
	"github.com/signerd/signerd/internal/keystore"
	"github.com/signerd/signerd/internal/pkgsig"
	"github.com/signerd/signerd/internal/skill"
	"github.com/signerd/signerd/internal/store"
)

// SignInput asks for a Cloacina package signature over a digest the client
// computed.
type SignInput struct {
	KeyName      string
	Digest       []byte
	ArtifactName string
}

// SignOutput is a finished, durably recorded signature.
type SignOutput struct {
	Document []byte
	Record   store.SignatureRecord
}

// maxArtifactName bounds the recorded artifact name.
const maxArtifactName = 1024

// Sign signs a package digest with the key's current version inside the
// HSM, records the signature and its audit event durably, and only then
// returns the document. If recording fails the signature is discarded.
func (s *Service) Sign(ctx context.Context, in SignInput) (SignOutput, error) {
	if err := ValidateKeyName(in.KeyName); err != nil {
		return SignOutput{}, err
	}
	if len(in.Digest) != pkgsig.DigestSize {
		return SignOutput{}, fmt.Errorf("digest is %d bytes, want %d (SHA-256): %w", len(in.Digest), pkgsig.DigestSize, errdefs.ErrInvalidArgument)
	}
	if len(in.ArtifactName) > maxArtifactName || !utf8.ValidString(in.ArtifactName) || strings.ContainsAny(in.ArtifactName, "\x00\n\r") {
		return SignOutput{}, fmt.Errorf("artifact name is not a printable name of at most %d bytes: %w", maxArtifactName, errdefs.ErrInvalidArgument)
	}
	e, err := s.currentSigner(ctx, in.KeyName)
	if err != nil {
		return SignOutput{}, err
	}
	key, ver, signer := e.key, e.ver, e.signer
	if keystore.Algorithm(key.Algorithm) != keystore.Ed25519 {
		return SignOutput{}, errdefs.WithReason(errdefs.ReasonWrongAlgorithm, fmt.Errorf(
			"key %q is %s; Cloacina package signatures need an ed25519 key: %w", key.Name, key.Algorithm, errdefs.ErrInvalidArgument))
	}
	pub, ok := signer.Public().(ed25519.PublicKey)
	if !ok {
		return SignOutput{}, fmt.Errorf("key %q: HSM returned a %T public key: %w", key.Name, signer.Public(), errdefs.ErrInternal)
	}

	release, err := s.acquireHSM(ctx)
	if err != nil {
		return SignOutput{}, err
	}
	sig, err := signer.Sign(rand.Reader, in.Digest, crypto.Hash(0))
	release()
	if err != nil {
		return SignOutput{}, fmt.Errorf("sign with key %q v%d: %w", key.Name, ver.Version, err)
	}
	// Never hand out a signature the HSM got wrong (a fault, a swapped
	// object): Ed25519 signatures are deterministic, so one faulty
	// signature beside a correct one of the same digest gives away the
	// private key. e.check applies crypto/ed25519.Verify's rule exactly,
	// on precomputed multiples of the key: ~25% of ed25519.Verify's CPU
	// (internal/edcheck says why not a batch equation).
	if !e.check.Verify(in.Digest, sig) {
		return SignOutput{}, fmt.Errorf("key %q v%d: the HSM produced a signature that does not verify: %w", key.Name, ver.Version, errdefs.ErrInternal)
	}

	var digest [pkgsig.DigestSize]byte
	copy(digest[:], in.Digest)
	signedAt := s.now()
	doc := pkgsig.NewDocument(digest, pub, sig, signedAt).Encode()
	rec := store.SignatureRecord{
		Digest:       digest[:],
		Format:       store.FormatCloacina,
		KeyName:      key.Name,
		KeyVersion:   ver.Version,
		Fingerprint:  ver.Fingerprint,
		Algorithm:    key.Algorithm,
		Signature:    sig,
		SignedAt:     signedAt,
		ArtifactName: in.ArtifactName,
		Caller:       CallerFrom(ctx).ID,
		Document:     doc,
	}
	ev := s.event(ctx, "sign")
	ev.Key = fmt.Sprintf("%s@v%d", key.Name, ver.Version)
	ev.Digest = pkgsig.HexDigest(digest[:])
	ev.Detail = "artifact=" + in.ArtifactName
	if err := s.store.PutSignature(ctx, rec, ev); err != nil {
		return SignOutput{}, fmt.Errorf("record signature (not released): %w", err)
	}
	s.obs.Signed(key.Name, key.Algorithm, string(store.FormatCloacina))
	return SignOutput{Document: doc, Record: rec}, nil
}

// currentSigner resolves a key name to its current version and a signer
// for it (with, for an Ed25519 key, the check of its signatures). A key
// with no active version cannot sign.
func (s *Service) currentSigner(ctx context.Context, name string) (cachedSigner, error) {
	gen := s.cache.gen.Load()
	s.cache.mu.RLock()
	e, ok := s.cache.signers.get(name)
	s.cache.mu.RUnlock()
	if ok && e.gen == gen {
		return e, nil
	}
	key, ver, signer, err := s.findSigner(ctx, name)
	if err != nil {
		return cachedSigner{key: key, ver: ver}, err
	}
	e = cachedSigner{gen: gen, key: key, ver: ver, signer: signer}
	switch pub := signer.Public().(type) {
	case ed25519.PublicKey:
		// Built once per key and process (~2 ms), outside the lock.
		if e.check, err = edcheck.NewVerifier(pub); err != nil {
			return e, fmt.Errorf("key %q v%d: %w: %w", key.Name, ver.Version, err, errdefs.ErrInternal)
		}
	case *ecdsa.PublicKey:
		// A key that is no P-256 key is refused where it is used
		// (SignSkill), as before; it just has no cached fingerprint or
		// tables (~2 ms to build, once per key and process).
		e.fingerprint, _ = skill.Fingerprint(pub)
		if pub.Curve == elliptic.P256() {
			// Without tables the check still runs, on crypto/ecdsa.Verify
			// (skill.BuildSignature); a P-256 key refused here is worth
			// a warning.
			if e.ecCheck, err = eccheck.NewVerifier(pub); err != nil {
				s.log.WarnContext(ctx, "ECDSA check tables not built; checking with crypto/ecdsa", "key", key.Name, "version", ver.Version, "err", err)
			}
		}
	}
	s.cache.mu.Lock()
	if s.cache.gen.Load() == gen {
		s.cache.signers.put(name, e)
	}
	s.cache.mu.Unlock()
	return e, nil
}

// findSigner is currentSigner without the cache.
func (s *Service) findSigner(ctx context.Context, name string) (store.Key, store.KeyVersion, crypto.Signer, error) {
	key, err := s.cachedKeyByName(ctx, name)
	if err != nil {
		return key, store.KeyVersion{}, nil, err
	}
	ver, ok := key.Current()
	if !ok {
		return key, ver, nil, errdefs.WithReason(errdefs.ReasonKeyRevoked,
			fmt.Errorf("key %q is revoked and can no longer sign: %w", name, errdefs.ErrFailedPrecondition))
	}
	pub, err := ParsePublicKeyDER(ver.PublicKey)
	if err != nil {
		return key, ver, nil, fmt.Errorf("key %q v%d: recorded public key: %w", name, ver.Version, errdefs.ErrInternal)
	}
	signer, err := s.keys.Signer(ctx, keystore.KeyRef{ID: ver.CKAID, Algorithm: keystore.Algorithm(key.Algorithm), Public: pub})
	if err != nil {
		return key, ver, nil, fmt.Errorf("key %q v%d: %w", name, ver.Version, err)
	}
	return key, ver, signer, nil
}
