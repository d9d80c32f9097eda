package service

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"
	"unicode"

	"github.com/signerd/signerd/internal/errdefs"
	"github.com/signerd/signerd/internal/keystore"
	"github.com/signerd/signerd/internal/skill"
	"github.com/signerd/signerd/internal/store"
)

// SignSkillInput asks for a SchemaPin skill signature over a root hash the
// client computed by canonicalizing the folder.
type SignSkillInput struct {
	KeyName    string
	Root       []byte
	Manifest   map[string]string
	Domain     string
	SkillName  string
	SignerKid  string
	Options    skill.SignOptions
	Convention skill.DigestConvention
}

// SignSkillOutput is a finished, recorded .schemapin.sig.
type SignSkillOutput struct {
	Document   []byte
	Record     store.SignatureRecord
	Convention skill.DigestConvention
}

// SchemaPinFingerprint renders a recorded ECDSA fingerprint as SchemaPin
// does ("sha256:" + hex of the SPKI DER).
func SchemaPinFingerprint(fp string) string { return skill.FingerprintPrefix + fp }

// SignSkill signs the skill root with the key's current ECDSA P-256
// version inside the HSM, builds the .schemapin.sig (checking the signature
// verifies before it leaves), records it with its metadata, and returns it.
func (s *Service) SignSkill(ctx context.Context, in SignSkillInput) (SignSkillOutput, error) {
	if err := ValidateKeyName(in.KeyName); err != nil {
		return SignSkillOutput{}, err
	}
	if len(in.Root) != 32 {
		return SignSkillOutput{}, fmt.Errorf("root is %d bytes, want 32: %w", len(in.Root), errdefs.ErrInvalidArgument)
	}
	var root [32]byte
	copy(root[:], in.Root)
	if got, err := skill.ComputeRoot(in.Manifest); err != nil {
		return SignSkillOutput{}, err
	} else if got != root {
		return SignSkillOutput{}, fmt.Errorf("root does not match the file manifest (computed %x): %w", got, errdefs.ErrInvalidArgument)
	}
	if err := validateDomain(in.Domain); err != nil {
		return SignSkillOutput{}, err
	}
	conv := in.Convention
	if conv == "" {
		conv = skill.DigestSHA256
	}
	digest, err := skill.SigningDigest(root, conv)
	if err != nil {
		return SignSkillOutput{}, err
	}
	e, err := s.currentSigner(ctx, in.KeyName)
	if err != nil {
		return SignSkillOutput{}, err
	}
	key, ver, signer := e.key, e.ver, e.signer
	if keystore.Algorithm(key.Algorithm) != keystore.ECDSAP256 {
		return SignSkillOutput{}, errdefs.WithReason(errdefs.ReasonWrongAlgorithm, fmt.Errorf(
			"key %q is %s; SchemaPin skill signatures need an ecdsa-p256 key: %w", key.Name, key.Algorithm, errdefs.ErrInvalidArgument))
	}
	pub, ok := signer.Public().(*ecdsa.PublicKey)
	if !ok {
		return SignSkillOutput{}, fmt.Errorf("key %q: HSM returned a %T public key: %w", key.Name, signer.Public(), errdefs.ErrInternal)
	}
	if err := keyServesDomain(key, in.Domain); err != nil {
		return SignSkillOutput{}, err
	}
	// Everything the document needs is checked before the HSM signs: a
	// request that would be refused never costs an HSM operation.
	signedAt := s.now().Truncate(time.Second)
	skillName := in.SkillName
	input := skill.SignatureInput{
		Root: root, Manifest: in.Manifest, Domain: in.Domain, SignerKid: in.SignerKid, SkillName: skillName,
		SignedAt: signedAt, Options: in.Options, PublicKey: pub, Convention: conv, Fingerprint: e.fingerprint,
	}
	if err := skill.CheckSignatureInput(input); err != nil {
		return SignSkillOutput{}, err
	}
	release, err := s.acquireHSM(ctx)
	if err != nil {
		return SignSkillOutput{}, err
	}
	der, err := signer.Sign(rand.Reader, digest, crypto.SHA256)
	release()
	if err != nil {
		return SignSkillOutput{}, fmt.Errorf("sign with key %q v%d: %w", key.Name, ver.Version, err)
	}
	input.SignatureDER = der
	if e.ecCheck != nil {
		input.Verify = e.ecCheck.Verify
	}
	// BuildSignatureDocument verifies der with the key before anything
	// leaves (input.PublicKey is set). Measured for issue #15: with
	// crypto/ecdsa.Verify the check cost ~190 µs of CPU per SignSkill on
	// this 2-core machine under load (BenchmarkSign/ecdsa-p256, medians:
	// 471 µs with it, 278 without), 104 of 507 µs in an idle profile; on
	// the key's tables (internal/eccheck) it is 15.6 against 82 µs for
	// crypto/ecdsa.Verify (BenchmarkVerify; 33 before its amd64
	// assembly). It stays. A randomized ECDSA signature does not leak the
	// key to one faulty signature the way a deterministic Ed25519 one
	// does (a fault in s with a fresh unknown nonce leaves two unknowns),
	// but faults in the scalar multiplication do: a point or curve
	// parameter faulted off P-256 gives an r whose nonce can be solved on
	// the weak group, and then d = (s·k − z)/r from one signature
	// (invalid-curve fault attacks, Biehl, Meyer and Müller, CRYPTO 2000).
	// Such signatures do not verify, and this check is what keeps them,
	// and signatures from a swapped private object, from being recorded
	// and returned.
	doc, err := skill.BuildSignatureDocument(input)
	if err != nil {
		if errors.Is(err, errdefs.ErrInvalidArgument) {
			return SignSkillOutput{}, err
		}
		return SignSkillOutput{}, fmt.Errorf("key %q v%d: %w: %w", key.Name, ver.Version, err, errdefs.ErrInternal)
	}
	rec := store.SignatureRecord{
		Digest: root[:], Format: store.FormatSchemaPin, KeyName: key.Name, KeyVersion: ver.Version,
		Fingerprint: ver.Fingerprint, Algorithm: key.Algorithm, Signature: der, SignedAt: signedAt,
		ArtifactName: skillName, Caller: CallerFrom(ctx).ID, Document: doc,
	}
	ev := s.event(ctx, "skill.sign")
	ev.Key = fmt.Sprintf("%s@v%d", key.Name, ver.Version)
	ev.Digest = hex.EncodeToString(root[:])
	ev.Detail = fmt.Sprintf("domain=%s skill=%s convention=%s", in.Domain, skillName, conv)
	if err := s.store.PutSignature(ctx, rec, ev); err != nil {
		return SignSkillOutput{}, fmt.Errorf("record signature (not released): %w", err)
	}
	s.obs.Signed(key.Name, key.Algorithm, string(store.FormatSchemaPin))
	return SignSkillOutput{Document: doc, Record: rec, Convention: conv}, nil
}

// validateDomain accepts a host name: SchemaPin domains are DNS names, and
// they end up in audit records and terminal output.
func validateDomain(d string) error {
	if d == "" || len(d) > 253 {
		return fmt.Errorf("domain %q is not a host name: %w", clipQuoted(d), errdefs.ErrInvalidArgument)
	}
	for _, r := range d {
		if r <= ' ' || r == 0x7f || strings.ContainsRune("/:@\\", r) || !unicode.IsPrint(r) {
			return fmt.Errorf("domain %q is not a host name: %w", clipQuoted(d), errdefs.ErrInvalidArgument)
		}
	}
	return nil
}

// normalizeDomain compares host names as DNS does: case-insensitively and
// ignoring a trailing dot.
func normalizeDomain(d string) string { return strings.TrimSuffix(strings.ToLower(d), ".") }

// keyServesDomain binds a SchemaPin key to its domain: a key created with
// --org DOMAIN signs, and verifies, for that domain only, so that its
// revocation is published where verifiers of that domain look (the
// domain's revocation document lists the keys whose org it is). A key
// without an org is not bound.
func keyServesDomain(k store.Key, domain string) error {
	if k.Org == "" || normalizeDomain(k.Org) == normalizeDomain(domain) {
		return nil
	}
	return errdefs.WithReason("DOMAIN_MISMATCH", fmt.Errorf(
		"key %q belongs to domain %q, not %q: %w", k.Name, k.Org, clipQuoted(domain), errdefs.ErrFailedPrecondition))
}

// clipQuoted bounds a caller-chosen value quoted in an error message.
func clipQuoted(v string) string { return errdefs.Clip(v) }

// domainConfigured reports whether a skill domain is a configured org,
// as given or normalised (lower case, no trailing dot).
func (s *Service) domainConfigured(ctx context.Context, domain string) (bool, error) {
	for _, org := range []string{domain, normalizeDomain(domain)} {
		v, err := s.cachedTrustView(ctx, org)
		if err != nil || v.Configured {
			return v.Configured, err
		}
	}
	return false, nil
}

// VerifySkillInput is what a client read from a skill folder.
type VerifySkillInput struct {
	Domain string
	Root   []byte
	// Files is the folder's manifest, whose root must be Root: its paths
	// are checked against the signed ones, which the root cannot see.
	Files      map[string]string
	Document   []byte
	Convention skill.DigestConvention
}

// VerifySkillOutput is a valid verification.
type VerifySkillOutput struct {
	Result  *skill.Result
	KeyName string
}

// metadataFields are the claims in a .schemapin.sig that its signature does
// not cover (spec §0.3); online verification compares them with what
// signerd recorded when it signed.
var metadataFields = []struct {
	name string
	get  func(*skill.Signature) string
}{
	{"domain", func(s *skill.Signature) string { return s.Domain }},
	{"expires_at", func(s *skill.Signature) string { return s.ExpiresAt }},
	{"previous_hash", func(s *skill.Signature) string { return s.PreviousHash }},
	{"schema_version", func(s *skill.Signature) string { return s.SchemaVersion }},
	{"skill_name", func(s *skill.Signature) string { return s.SkillName }},
	{"signed_at", func(s *skill.Signature) string { return s.SignedAt }},
	{"signer_kid", func(s *skill.Signature) string { return s.SignerKid }},
	{"canonicalization", func(s *skill.Signature) string { return s.Canonicalization }},
}

// VerifySkill verifies a skill signature with the key signerd signed it
// with and reports metadata that differs from signerd's record. It returns
// an output only for a valid skill; otherwise a *errdefs.VerificationError
// whose message starts with the SchemaPin error code.
func (s *Service) VerifySkill(ctx context.Context, in VerifySkillInput) (VerifySkillOutput, error) {
	out, err := s.verifySkill(ctx, in)
	if v, ok := errdefs.AsVerification(err); ok {
		ev := s.event(ctx, "skill.verify")
		ev.Org, ev.Digest, ev.Outcome, ev.Detail = in.Domain, hex.EncodeToString(in.Root), string(v.Reason), v.Message
		s.auditRefusal(ctx, ev)
	}
	return out, err
}

func (s *Service) verifySkill(ctx context.Context, in VerifySkillInput) (VerifySkillOutput, error) {
	if err := validateDomain(in.Domain); err != nil {
		return VerifySkillOutput{}, err
	}
	if len(in.Root) != 32 {
		return VerifySkillOutput{}, fmt.Errorf("root is %d bytes, want 32: %w", len(in.Root), errdefs.ErrInvalidArgument)
	}
	var root [32]byte
	copy(root[:], in.Root)
	// The domain must be known: configured as an org (trust, grant or
	// policy set for it), or the domain of the signerd key that signed.
	// Until the key is found, every refusal of an unknown domain is
	// UNKNOWN_ORG.
	known, err := s.domainConfigured(ctx, in.Domain)
	if err != nil {
		return VerifySkillOutput{}, err
	}
	var manifestErr error
	if got, err := skill.ComputeRoot(in.Files); err != nil {
		manifestErr = fmt.Errorf("file manifest (required, to check the folder's file names): %w", err)
	} else if got != root {
		manifestErr = fmt.Errorf("root does not match the file manifest (computed %x): %w", got, errdefs.ErrInvalidArgument)
	}
	if manifestErr != nil {
		if !known {
			return VerifySkillOutput{}, unknownOrg(in.Domain)
		}
		return VerifySkillOutput{}, manifestErr
	}
	fail := func(reason errdefs.Reason, code, format string, args ...any) error {
		if !known {
			return unknownOrg(in.Domain)
		}
		return &errdefs.VerificationError{Reason: reason, Code: code, Message: code + ": " + fmt.Sprintf(format, args...), PackageHash: hex.EncodeToString(root[:])}
	}
	if len(in.Document) == 0 {
		return VerifySkillOutput{}, fail(errdefs.ReasonSignatureNotFound, "signature_invalid", "no .schemapin.sig given")
	}
	sig, err := skill.ParseSignature(in.Document)
	if err != nil {
		return VerifySkillOutput{}, fail(errdefs.ReasonMalformedSignature, "signature_invalid", "%v", err)
	}

	// The key: the one signerd signed this root with, else the one the
	// document names, if it is one of ours.
	recs, err := s.store.SignaturesByDigest(ctx, root[:])
	if err != nil {
		return VerifySkillOutput{}, err
	}
	var rec *store.SignatureRecord
	for i := range recs {
		if recs[i].Format == store.FormatSchemaPin && bytes.Equal(recs[i].Document, in.Document) {
			rec = &recs[i]
			break
		}
	}
	if rec == nil {
		// An edited document still carries its signature: ECDSA
		// signatures are randomized, so its r names the one signing it
		// came from, among several of the same root by the same key
		// (whose metadata may differ). r, not the whole signature:
		// (r, n−s) verifies too, and must not lose the match.
		if der, err := base64.StdEncoding.DecodeString(sig.Signature); err == nil {
			if r, ok := skill.SignatureR(der); ok {
				for i := range recs {
					if rr, ok := skill.SignatureR(recs[i].Signature); ok && recs[i].Format == store.FormatSchemaPin && rr.Cmp(r) == 0 {
						rec = &recs[i]
						break
					}
				}
			}
		}
	}
	if rec == nil {
		for i := range recs {
			if recs[i].Format == store.FormatSchemaPin && SchemaPinFingerprint(recs[i].Fingerprint) == sig.SignerKid {
				rec = &recs[i]
			}
		}
	}
	var key store.Key
	var ver store.KeyVersion
	switch {
	case rec != nil:
		key, ver, err = s.store.FindKeyVersion(ctx, rec.Fingerprint)
	case skill.IsSHA256Ref(sig.SignerKid):
		key, ver, err = s.store.FindKeyVersion(ctx, strings.TrimPrefix(sig.SignerKid, skill.FingerprintPrefix))
	default:
		err = errdefs.ErrNotFound
	}
	if errors.Is(err, errdefs.ErrNotFound) {
		return VerifySkillOutput{}, fail(errdefs.ReasonSignatureNotFound, "signature_invalid",
			"signerd has no record of signing this skill and holds no key named by signer_kid %s", errdefs.Quote(sig.SignerKid))
	} else if err != nil {
		return VerifySkillOutput{}, err
	}
	if !known && (key.Org == "" || normalizeDomain(key.Org) != normalizeDomain(in.Domain)) {
		return VerifySkillOutput{}, unknownOrg(in.Domain)
	}
	known = true
	pubAny, err := ParsePublicKeyDER(ver.PublicKey)
	pub, ok := pubAny.(*ecdsa.PublicKey)
	if err != nil || !ok {
		return VerifySkillOutput{}, fail(errdefs.ReasonUntrustedSigner, "key_not_found", "key %s is not an ECDSA P-256 key", key.Name)
	}
	if key.Org != "" && normalizeDomain(key.Org) != normalizeDomain(in.Domain) {
		return VerifySkillOutput{}, fail(errdefs.ReasonUntrustedSigner, "domain_mismatch",
			"the skill was signed with key %s of domain %s, not of %s", key.Name, key.Org, errdefs.Quote(in.Domain))
	}
	if ver.State == store.KeyRevoked {
		// A record of the signing precedes the revocation in the log
		// (checkRevoked says why its time is not compared).
		if ver.RevocationReason == store.ReasonKeyCompromise || rec == nil {
			return VerifySkillOutput{}, fail(errdefs.ReasonKeyRevoked, "key_revoked", "key %s v%d was revoked (%s)", key.Name, ver.Version, ver.RevocationReason)
		}
	}
	var signedFiles map[string]string
	if rec != nil {
		if recorded, err := skill.ParseSignature(rec.Document); err == nil {
			signedFiles = recorded.FileManifest
		}
	}
	if len(sig.FileManifest) == 0 && len(signedFiles) != 0 {
		// A document too large for one request comes without its
		// manifest, which the signature does not cover: the folder's
		// names are checked against signerd's record instead.
		sig.FileManifest = signedFiles
	}
	res, err := skill.VerifyOffline(ctx, skill.VerifyInput{
		Root: &root, Files: in.Files, SignedFiles: signedFiles, Signature: sig, PublicKey: pub, Domain: in.Domain,
		Options: skill.VerifyOptions{Digest: in.Convention, Now: s.now()},
	})
	if err != nil {
		return VerifySkillOutput{}, err
	}
	if !res.Valid {
		return VerifySkillOutput{}, res.Err()
	}
	// The signature is good; now the claims it does not cover.
	if rec == nil {
		res.Warnings = append(res.Warnings, "no_signing_record")
	} else if recorded, err := skill.ParseSignature(rec.Document); err == nil {
		var edits []string
		for _, f := range metadataFields {
			if f.get(recorded) != f.get(sig) {
				edits = append(edits, fmt.Sprintf("%s %q (signed as %q)", f.name, clipQuoted(f.get(sig)), clipQuoted(f.get(recorded))))
			}
		}
		sort.Strings(edits)
		if len(edits) > 0 {
			return VerifySkillOutput{}, fail(errdefs.ReasonInvalidSignature, "metadata_edited",
				"the signature verifies, but its unauthenticated metadata was edited after signing: %s", strings.Join(edits, "; "))
		}
	}
	return VerifySkillOutput{Result: res, KeyName: key.Name}, nil
}

// Discovery builds .well-known/schemapin.json for a key: its current
// public key, and the fingerprints of its revoked versions.
func (s *Service) Discovery(ctx context.Context, keyName, developer, contact string) ([]byte, error) {
	key, err := s.GetKey(ctx, keyName)
	if err != nil {
		return nil, err
	}
	if keystore.Algorithm(key.Algorithm) != keystore.ECDSAP256 {
		return nil, errdefs.WithReason(errdefs.ReasonWrongAlgorithm, fmt.Errorf("key %q is %s; SchemaPin needs ecdsa-p256: %w", keyName, key.Algorithm, errdefs.ErrInvalidArgument))
	}
	ver, ok := key.Current()
	if !ok {
		return nil, errdefs.WithReason(errdefs.ReasonKeyRevoked, fmt.Errorf("key %q has no active version to publish: %w", keyName, errdefs.ErrFailedPrecondition))
	}
	pub, err := ParsePublicKeyDER(ver.PublicKey)
	if err != nil {
		return nil, err
	}
	d, err := skill.NewDiscovery(pub.(*ecdsa.PublicKey), developer)
	if err != nil {
		return nil, err
	}
	d.Contact = contact
	// revoked_keys: the revoked versions of this key and, as a SchemaPin
	// verifier reads a domain's discovery document, of every other ECDSA
	// key of the same domain (key create --org DOMAIN): a key revoked
	// outright can no longer publish a discovery document of its own.
	keys := []store.Key{key}
	if key.Org != "" {
		all, err := s.store.ListKeys(ctx)
		if err != nil {
			return nil, err
		}
		for _, k := range all {
			if k.Name != key.Name && normalizeDomain(k.Org) == normalizeDomain(key.Org) && keystore.Algorithm(k.Algorithm) == keystore.ECDSAP256 {
				keys = append(keys, k)
			}
		}
	}
	for _, k := range keys {
		for _, v := range k.Versions {
			if v.State == store.KeyRevoked {
				d.RevokedKeys = append(d.RevokedKeys, SchemaPinFingerprint(v.Fingerprint))
			}
		}
	}
	return d.Encode()
}

// Revocation builds the standalone revocation document of a domain: every
// revoked version of the ECDSA keys owned by that domain (key create --org
// DOMAIN).
func (s *Service) Revocation(ctx context.Context, domain string) ([]byte, error) {
	if err := validateDomain(domain); err != nil {
		return nil, err
	}
	keys, err := s.store.ListKeys(ctx)
	if err != nil {
		return nil, err
	}
	doc := skill.NewRevocationDocument(domain, s.now())
	for _, k := range keys {
		if normalizeDomain(k.Org) != normalizeDomain(domain) || keystore.Algorithm(k.Algorithm) != keystore.ECDSAP256 {
			continue
		}
		for _, v := range k.Versions {
			if v.State == store.KeyRevoked && v.RevokedAt != nil {
				if err := doc.Add(SchemaPinFingerprint(v.Fingerprint), *v.RevokedAt, skill.RevocationReason(v.RevocationReason)); err != nil {
					return nil, err
				}
			}
		}
	}
	return doc.Encode()
}

// DNSTXT returns the _schemapin TXT value for a key's current version.
func (s *Service) DNSTXT(ctx context.Context, keyName string) (string, error) {
	key, err := s.GetKey(ctx, keyName)
	if err != nil {
		return "", err
	}
	if keystore.Algorithm(key.Algorithm) != keystore.ECDSAP256 {
		return "", errdefs.WithReason(errdefs.ReasonWrongAlgorithm, fmt.Errorf("key %q is %s; SchemaPin needs ecdsa-p256: %w", keyName, key.Algorithm, errdefs.ErrInvalidArgument))
	}
	ver, ok := key.Current()
	if !ok {
		return "", errdefs.WithReason(errdefs.ReasonKeyRevoked, fmt.Errorf("key %q has no active version: %w", keyName, errdefs.ErrFailedPrecondition))
	}
	fp := SchemaPinFingerprint(ver.Fingerprint)
	rec, err := skill.NewDNSTXT(fp, fp)
	if err != nil {
		return "", err
	}
	return rec.String(), nil
}
