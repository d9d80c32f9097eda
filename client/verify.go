package client

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"time"

	signerv1 "github.com/signerd/signerd/gen/signer/v1"
	"github.com/signerd/signerd/internal/errdefs"
)

// DigestSize is the size of the SHA-256 digests signerd signs and verifies.
const DigestSize = sha256.Size

// Outcome says why signerd let a loader load an artifact.
type Outcome int

// Outcomes of a Verify that was not refused.
const (
	// OutcomeVerified: a signature by a key the org trusts verified.
	OutcomeVerified Outcome = iota + 1
	// OutcomeUnsignedAdmitted: the artifact is unsigned and the org's
	// policy does not require signatures. It may be loaded, unverified.
	OutcomeUnsignedAdmitted
)

func (o Outcome) String() string {
	switch o {
	case OutcomeVerified:
		return "VERIFIED"
	case OutcomeUnsignedAdmitted:
		return "UNSIGNED_ADMITTED"
	}
	return fmt.Sprintf("Outcome(%d)", int(o))
}

// Verdict is signerd's answer when the artifact may be loaded.
type Verdict struct {
	Outcome Outcome
	// PackageHash is the lowercase hex SHA-256 that was checked.
	PackageHash string
	// SignerFingerprint and SignerKeyName name the key whose signature
	// verified (empty for OutcomeUnsignedAdmitted).
	SignerFingerprint string
	SignerKeyName     string
	// SignatureSource is "detached" (the document the loader sent) or
	// "recorded" (a signature signerd made and recorded).
	SignatureSource string
	// SignedAt is when the accepted signature was made, when known.
	SignedAt time.Time
}

// Verified reports whether a trusted signature verified; false for an
// unsigned artifact that the org's policy merely admits.
func (v Verdict) Verified() bool { return v.Outcome == OutcomeVerified }

// Verify asks signerd whether org may load the artifact whose SHA-256 is
// digest. signatureDocument is the detached .sig document if the caller
// has one; nil makes signerd look among the signatures it recorded.
//
// A nil error means the artifact may be loaded (see Verdict.Outcome); a
// refusal is a *VerificationError (errors.Is with ErrTampered and the
// other sentinels). Verify never hashes anything: hash what you will load,
// as OpenVerified does.
func (c *Client) Verify(ctx context.Context, org string, digest [DigestSize]byte, signatureDocument []byte) (Verdict, error) {
	if org == "" {
		return Verdict{}, fmt.Errorf("verify: no org given: %w", errdefs.ErrInvalidArgument)
	}
	if signatureDocument != nil && len(signatureDocument) == 0 {
		// An empty document (an empty .sig file) is a malformed signature,
		// not "no signature": on the wire empty bytes and none are the
		// same, and signerd would fall back to its records.
		return Verdict{}, errdefs.Verification(errdefs.ReasonMalformedSignature, "signature document is empty")
	}
	resp, err := c.Signer.Verify(ctx, &signerv1.VerifyRequest{Org: org, Digest: digest[:], SignatureDocument: signatureDocument})
	if err != nil {
		return Verdict{}, c.FromStatus(err)
	}
	if got, want := resp.GetPackageHash(), hex.EncodeToString(digest[:]); got != want {
		// Fail closed: an answer about other bytes admits nothing.
		return Verdict{}, fmt.Errorf("signerd answered Verify for package hash %q, not for %s: %w", got, want, errdefs.ErrInternal)
	}
	v := Verdict{
		PackageHash:       hex.EncodeToString(digest[:]),
		SignerFingerprint: resp.GetSignerFingerprint(),
		SignerKeyName:     resp.GetSignerKeyName(),
		SignatureSource:   resp.GetSignatureSource(),
	}
	if resp.GetSignedAt() != nil {
		v.SignedAt = resp.GetSignedAt().AsTime()
	}
	switch resp.GetOutcome() {
	case signerv1.VerifyOutcome_VERIFY_OUTCOME_VERIFIED:
		v.Outcome = OutcomeVerified
	case signerv1.VerifyOutcome_VERIFY_OUTCOME_UNSIGNED_ADMITTED:
		v.Outcome = OutcomeUnsignedAdmitted
	default:
		// Fail closed: an answer this client cannot read admits nothing.
		return Verdict{}, fmt.Errorf("signerd answered Verify with outcome %v, which this client does not know: %w", resp.GetOutcome(), errdefs.ErrInternal)
	}
	return v, nil
}
