package service

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"fmt"
	"time"

	"github.com/signerd/signerd/internal/errdefs"
	"github.com/signerd/signerd/internal/pkgsig"
	"github.com/signerd/signerd/internal/store"
)

// VerifyInput asks whether an org may load an artifact.
type VerifyInput struct {
	Org    string
	Digest []byte
	// Document is the detached .sig JSON, or nil to use the recorded
	// signatures for the digest. Empty but not nil (an empty .sig file) is
	// MALFORMED_SIGNATURE, never a fallback to the records.
	Document []byte
}

// Outcome says why Verify admitted an artifact.
type Outcome int

// Outcomes.
const (
	OutcomeVerified Outcome = iota + 1
	OutcomeUnsignedAdmitted
)

// Signature sources.
const (
	SourceDetached = "detached"
	SourceRecorded = "recorded"
)

// VerifyResult is returned only when the artifact may be loaded.
type VerifyResult struct {
	Outcome     Outcome
	PackageHash string
	Fingerprint string
	KeyName     string
	// SignedAt is from signerd's record when there is one, else parsed from
	// the document (informational, unsigned); zero when unknown.
	SignedAt time.Time
	Source   string
	// Digest and Signature are the accepted signature's (nil for
	// OutcomeUnsignedAdmitted): what its proof of logging is looked up by
	// (LogSignatureProof).
	Digest    []byte
	Signature []byte
}

// candidate is one signature that may admit the artifact.
type candidate struct {
	sig pkgsig.Signature
	// recordedAt is signerd's own record of the signing time, if any.
	recordedAt *time.Time
}

// Verify decides whether org may load the artifact with the given digest.
// It returns a result only when the loader may load it; every refusal is a
// *errdefs.VerificationError (or an input error), never a result a careless
// caller could mistake for success. Order: signature present (else
// SIGNATURE_NOT_FOUND, unless policy admits unsigned), well formed (else
// MALFORMED_SIGNATURE), hash matches (else PACKAGE_TAMPERED), signer trusted
// (else UNTRUSTED_SIGNER) and not revoked (else KEY_REVOKED), signature
// valid (else INVALID_SIGNATURE). With several recorded signatures any one
// that passes suffices.
func (s *Service) Verify(ctx context.Context, in VerifyInput) (VerifyResult, error) {
	res, err := s.verify(ctx, in)
	switch {
	case err == nil && res.Outcome == OutcomeVerified:
		s.obs.Verified("VERIFIED")
	case err == nil:
		s.obs.Verified("UNSIGNED_ADMITTED")
	}
	if err != nil {
		if v, ok := errdefs.AsVerification(err); ok {
			s.obs.Verified(string(v.Reason))
			ev := s.event(ctx, "verify")
			ev.Org, ev.Digest, ev.Outcome = in.Org, pkgsig.HexDigest(in.Digest), string(v.Reason)
			ev.Detail = "fingerprint=" + v.Fingerprint
			s.auditRefusal(ctx, ev)
		}
	}
	return res, err
}

func (s *Service) verify(ctx context.Context, in VerifyInput) (VerifyResult, error) {
	if err := ValidateOrg(in.Org); err != nil {
		return VerifyResult{}, err
	}
	if len(in.Digest) != pkgsig.DigestSize {
		return VerifyResult{}, fmt.Errorf("digest is %d bytes, want %d (SHA-256): %w", len(in.Digest), pkgsig.DigestSize, errdefs.ErrInvalidArgument)
	}
	var digest [pkgsig.DigestSize]byte
	copy(digest[:], in.Digest)
	hexDigest := pkgsig.HexDigest(digest[:])

	var cands []candidate
	source := SourceRecorded
	if in.Document != nil {
		source = SourceDetached
		sig, err := pkgsig.Parse(in.Document)
		if err != nil {
			return VerifyResult{}, err
		}
		cands = append(cands, candidate{sig: sig})
	}
	// Whatever the artifact, an org nobody configured is refused, never
	// treated as one that trusts nothing and admits unsigned code.
	view, err := s.cachedTrustView(ctx, in.Org)
	if err != nil {
		return VerifyResult{}, err
	}
	if !view.Configured {
		return VerifyResult{}, unknownOrg(in.Org)
	}
	if len(in.Document) == 0 {
		recs, err := s.store.SignaturesByDigest(ctx, digest[:])
		if err != nil {
			return VerifyResult{}, err
		}
		for _, r := range recs {
			if r.Format != store.FormatCloacina || len(r.Signature) != ed25519.SignatureSize {
				continue
			}
			at := r.SignedAt
			cands = append(cands, candidate{
				sig:        pkgsig.Signature{Digest: digest, Fingerprint: r.Fingerprint, Sig: r.Signature},
				recordedAt: &at,
			})
		}
	}

	if len(cands) == 0 {
		if view.RequireSignatures {
			return VerifyResult{}, &errdefs.VerificationError{
				Reason:      errdefs.ReasonSignatureNotFound,
				Message:     fmt.Sprintf("no signature found for package %s, and org %s requires signatures", hexDigest, errdefs.Quote(in.Org)),
				PackageHash: hexDigest,
			}
		}
		return VerifyResult{Outcome: OutcomeUnsignedAdmitted, PackageHash: hexDigest}, nil
	}

	var best error
	for _, c := range cands {
		res, err := s.checkCandidate(ctx, in.Org, digest, c, view)
		if err == nil {
			res.Source = source
			return res, nil
		}
		if best == nil || rank(err) > rank(best) {
			best = err
		}
	}
	return VerifyResult{}, best
}

// rank orders failures by how far verification got, so that with several
// recorded signatures the most informative refusal is reported.
func rank(err error) int {
	v, ok := errdefs.AsVerification(err)
	if !ok {
		return 100 // infrastructure errors win: they must not be hidden
	}
	switch v.Reason {
	case errdefs.ReasonPackageTampered:
		return 1
	case errdefs.ReasonUntrustedSigner:
		return 2
	case errdefs.ReasonKeyRevoked:
		return 3
	case errdefs.ReasonInvalidSignature:
		return 4
	}
	return 0
}

func (s *Service) checkCandidate(ctx context.Context, org string, digest [pkgsig.DigestSize]byte, c candidate, view TrustView) (VerifyResult, error) {
	hexDigest := pkgsig.HexDigest(digest[:])
	fail := func(reason errdefs.Reason, format string, args ...any) error {
		return &errdefs.VerificationError{Reason: reason, Message: fmt.Sprintf(format, args...), PackageHash: hexDigest, Fingerprint: c.sig.Fingerprint}
	}
	if c.sig.Digest != digest {
		return VerifyResult{}, fail(errdefs.ReasonPackageTampered,
			"package has been tampered with: hash mismatch (signature is for %s, file is %s)", pkgsig.HexDigest(c.sig.Digest[:]), hexDigest)
	}
	entry, trusted := view.lookup(c.sig.Fingerprint)
	if !trusted {
		if _, removed := view.removed[c.sig.Fingerprint]; removed {
			return VerifyResult{}, fail(errdefs.ReasonKeyRevoked, "org %s no longer trusts key %s", errdefs.Quote(org), errdefs.Clip(c.sig.Fingerprint))
		}
		return VerifyResult{}, fail(errdefs.ReasonUntrustedSigner, "package signed by key %s, which org %s does not trust", errdefs.Clip(c.sig.Fingerprint), errdefs.Quote(org))
	}
	keyName := entry.KeyName
	// Revocation of one of signerd's own keys.
	ours, err := s.cachedKeyByFingerprint(ctx, c.sig.Fingerprint)
	if err != nil {
		return VerifyResult{}, err
	}
	if ours.found {
		keyName = ours.key.Name
		if ours.ver.State == store.KeyRevoked {
			if err := s.checkRevoked(ctx, digest, c, ours.key, ours.ver); err != nil {
				return VerifyResult{}, err
			}
		}
	}
	edPub, ok := entry.pub.(ed25519.PublicKey)
	if !ok {
		return VerifyResult{}, fail(errdefs.ReasonInvalidSignature, "trusted key %s is not an Ed25519 key", c.sig.Fingerprint)
	}
	// The curve arithmetic only when this very signature has not verified
	// under this key before; trust and revocation were decided above.
	vk, cacheable := verifiedKey(edPub, digest[:], c.sig.Sig)
	if !cacheable || !s.verified.has(vk) {
		if !s.tables.verify(edPub, digest[:], c.sig.Sig) {
			// The refusal as pkgsig words it (its check is the same rule).
			if err := pkgsig.CheckSignature(digest, c.sig, edPub); err != nil {
				return VerifyResult{}, err
			}
		}
		if cacheable {
			s.verified.add(vk)
		}
	}
	res := VerifyResult{Outcome: OutcomeVerified, PackageHash: hexDigest, Fingerprint: c.sig.Fingerprint, KeyName: keyName,
		Digest: bytes.Clone(digest[:]), Signature: bytes.Clone(c.sig.Sig)}
	if c.recordedAt != nil {
		res.SignedAt = *c.recordedAt
	} else if t, err := time.Parse(time.RFC3339Nano, c.sig.SignedAt); err == nil {
		res.SignedAt = t
	}
	return res, nil
}

// checkRevoked applies revocation semantics to a signature by a revoked key
// version: key_compromise refuses every signature; the other reasons keep
// the signatures signerd recorded (a detached document's signed_at is not
// signed, so only the daemon's record counts). A record is proof enough of
// the order: the store refuses to record a signature of a version once that
// version's revocation has committed (store.RevokedBeforeRecorded), so every
// record of it precedes the revocation in the log. The recorded time is not
// compared with RevokedAt: the revocation takes its time before its commit,
// and on another replica from another clock, so a signature recorded just
// before the revocation can carry a later time.
func (s *Service) checkRevoked(ctx context.Context, digest [pkgsig.DigestSize]byte, c candidate, k store.Key, ver store.KeyVersion) error {
	fail := &errdefs.VerificationError{
		Reason:      errdefs.ReasonKeyRevoked,
		Message:     fmt.Sprintf("key %s (v%d) was revoked (%s)", k.Name, ver.Version, ver.RevocationReason),
		PackageHash: pkgsig.HexDigest(digest[:]),
		Fingerprint: c.sig.Fingerprint,
	}
	if ver.RevocationReason == store.ReasonKeyCompromise {
		return fail
	}
	if c.recordedAt != nil {
		return nil
	}
	recs, err := s.store.SignaturesByDigest(ctx, digest[:])
	if err != nil {
		return err
	}
	for _, r := range recs {
		if r.Fingerprint == c.sig.Fingerprint {
			return nil
		}
	}
	fail.Message += "; no record shows this signature was made before the revocation"
	return fail
}
