package skill

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/sha256"
	"encoding/asn1"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/big"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/signerd/signerd/internal/errdefs"
)

// Schemapin versions written in .schemapin.sig (spec §5.1).
const (
	// SchemapinVersion13 is written when none of the v1.4 optional fields is.
	SchemapinVersion13 = "1.3"
	// SchemapinVersion14 is written as soon as expires_at, schema_version,
	// previous_hash or canonicalization is.
	SchemapinVersion14 = "1.4"
	// CanonicalizationV1 is the only canonicalization id upstream accepts;
	// absent means the same (spec §5.1, §6 step 1a).
	CanonicalizationV1 = "schemapin-v1"
)

// maxSignatureFileSize bounds LoadSignature. The manifest costs about 100
// bytes per file, so this allows folders of several hundred thousand files.
const maxSignatureFileSize = 64 << 20

// Signature is the .schemapin.sig document. Field order and JSON tags are
// those of upstream Go's SkillSignature (spec §5.1), so Encode writes the
// same bytes as the official Go SDK. Only Signature is authenticated, and it
// covers only the root hash (spec §0.3): every other field is a claim.
type Signature struct {
	// SchemapinVersion is "1.3", or "1.4" when a v1.4 optional field is set.
	SchemapinVersion string `json:"schemapin_version"`
	// SkillName is the front-matter name or the signer's override.
	SkillName string `json:"skill_name"`
	// SkillHash is "sha256:"+hex(root), or hex(SHA-256(root)) from Rust.
	SkillHash string `json:"skill_hash"`
	// Signature is standard base64 of the DER ECDSA signature over the root.
	Signature string `json:"signature"`
	// SignedAt is RFC 3339 UTC, second precision ("…Z").
	SignedAt string `json:"signed_at"`
	// ExpiresAt (v1.4) is advisory: expiry yields a warning, not a failure.
	ExpiresAt string `json:"expires_at,omitempty"`
	// SchemaVersion (v1.4α2) is an opaque version tag of the skill.
	SchemaVersion string `json:"schema_version,omitempty"`
	// PreviousHash (v1.4α2) is the predecessor's skill_hash (VerifyChain).
	PreviousHash string `json:"previous_hash,omitempty"`
	// Canonicalization (v1.4α3) is absent or "schemapin-v1".
	Canonicalization string `json:"canonicalization,omitempty"`
	// Domain is the signing domain the signer claims.
	Domain string `json:"domain"`
	// SignerKid names the key; by default its fingerprint. Never checked
	// upstream.
	SignerKid string `json:"signer_kid"`
	// FileManifest is Manifest.Files at signing time (DetectTamperedFiles).
	FileManifest map[string]string `json:"file_manifest"`
}

// ParseSignature reads a .schemapin.sig document. Like every upstream
// reader it ignores unknown fields, accepts either key order, and (like Go)
// matches field names case-insensitively. It checks only that the input is
// one JSON object of the right field types; whether the fields make sense
// is the verifier's business, so that a document upstream would verify is
// never refused here.
func ParseSignature(data []byte) (*Signature, error) {
	if err := expectObject(data); err != nil {
		return nil, fmt.Errorf(".schemapin.sig: %w", err)
	}
	var s Signature
	if err := json.Unmarshal(data, &s); err != nil {
		return nil, fmt.Errorf(".schemapin.sig: %w: %w", errdefs.ErrInvalidArgument, err)
	}
	return &s, nil
}

// LoadSignature reads and parses <dir>/.schemapin.sig. A missing file wraps
// errdefs.ErrNotFound, a malformed one errdefs.ErrInvalidArgument. The file
// is opened like a canonicalized file (regular only, no FIFO hang) but
// through a symlink, as every SDK reads it, and read up to a bound.
func LoadSignature(dir string) (*Signature, error) {
	data, err := readDocument(filepath.Join(dir, SignatureFilename), maxSignatureFileSize)
	if err != nil {
		return nil, err
	}
	return ParseSignature(data)
}

// Encode returns the document as upstream Go, JS and Python-without-options
// write it: two-space indented JSON in struct order, manifest keys in byte
// order, followed by one newline (spec §5.1, §4.1 json_indent2(doc)+"\n").
// Go's encoder escapes <, > and & as \u003c etc., exactly as upstream Go.
//
// The daemon encodes one document per SignSkill, so the usual one (every
// string printable ASCII that Go's encoder writes as it is, a manifest of
// at least one file) is written directly: MarshalIndent's reflection and
// indenting pass were 13 µs of a SignSkill's ~490 µs of CPU under load.
// Anything else goes through encoding/json; TestEncodeFastPath holds the
// two to the same bytes.
func (s *Signature) Encode() ([]byte, error) {
	if out, ok := s.encodePlain(); ok {
		return out, nil
	}
	return s.encodeJSON()
}

// encodeJSON is Encode through encoding/json.
func (s *Signature) encodeJSON() ([]byte, error) {
	out, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return nil, fmt.Errorf(".schemapin.sig: %w", err)
	}
	return append(out, '\n'), nil
}

// encodePlain writes what encodeJSON would, or returns false if a string
// needs escaping or the manifest is empty (MarshalIndent writes {} or
// null for those). Its field list is Signature's, by hand:
// TestEncodeFastPathFields fails when Signature gains a field.
func (s *Signature) encodePlain() ([]byte, bool) {
	if s == nil || len(s.FileManifest) == 0 {
		return nil, false
	}
	type field struct {
		name, value string
		omitEmpty   bool
	}
	fields := [...]field{
		{"schemapin_version", s.SchemapinVersion, false}, {"skill_name", s.SkillName, false},
		{"skill_hash", s.SkillHash, false}, {"signature", s.Signature, false}, {"signed_at", s.SignedAt, false},
		{"expires_at", s.ExpiresAt, true}, {"schema_version", s.SchemaVersion, true},
		{"previous_hash", s.PreviousHash, true}, {"canonicalization", s.Canonicalization, true},
		{"domain", s.Domain, false}, {"signer_kid", s.SignerKid, false},
	}
	size := 64
	for _, f := range fields {
		if !plainJSON(f.value) {
			return nil, false
		}
		size += len(f.name) + len(f.value) + 10
	}
	paths := make([]string, 0, len(s.FileManifest))
	for p, h := range s.FileManifest {
		if !plainJSON(p) || !plainJSON(h) {
			return nil, false
		}
		paths = append(paths, p)
		size += len(p) + len(h) + 12
	}
	slices.Sort(paths)
	b := make([]byte, 0, size)
	b = append(b, "{\n"...)
	for _, f := range fields {
		if f.omitEmpty && f.value == "" {
			continue
		}
		b = append(b, "  \""...)
		b = append(b, f.name...)
		b = append(b, "\": \""...)
		b = append(b, f.value...)
		b = append(b, "\",\n"...)
	}
	b = append(b, "  \"file_manifest\": {\n"...)
	for i, p := range paths {
		b = append(b, "    \""...)
		b = append(b, p...)
		b = append(b, "\": \""...)
		b = append(b, s.FileManifest[p]...)
		b = append(b, '"')
		if i < len(paths)-1 {
			b = append(b, ',')
		}
		b = append(b, '\n')
	}
	return append(b, "  }\n}\n"...), true
}

// plainJSON reports whether encoding/json writes str as it is between
// quotes: printable ASCII without '"', '\\' or the HTML characters it
// escapes.
func plainJSON(str string) bool {
	for i := 0; i < len(str); i++ {
		switch c := str[i]; {
		case c < 0x20 || c > 0x7e, c == '"', c == '\\', c == '<', c == '>', c == '&':
			return false
		}
	}
	return true
}

// WriteSignatureFile writes doc to <dir>/.schemapin.sig with mode 0644,
// through a temporary file and a rename so a reader never sees half a
// document. Upstream Go writes 0600, but a signature is public, and a skill
// folder is shipped to others: 0644, as signctl writes a package's .sig.
func WriteSignatureFile(dir string, doc []byte) error {
	f, err := os.CreateTemp(dir, SignatureFilename+".tmp-*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	ok := false
	defer func() {
		if !ok {
			f.Close()
			os.Remove(tmp)
		}
	}()
	if err := f.Chmod(0o644); err != nil {
		return err
	}
	if _, err := f.Write(doc); err != nil {
		return err
	}
	if err := f.Sync(); err != nil {
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp, filepath.Join(dir, SignatureFilename)); err != nil {
		return err
	}
	ok = true
	return nil
}

// SignOptions are upstream's optional v1.4 fields (spec §5.3 SignOptions).
// Writing any of them bumps schemapin_version to "1.4".
type SignOptions struct {
	// ExpiresIn, when positive, writes expires_at = signed_at + ExpiresIn
	// (second precision).
	ExpiresIn time.Duration
	// SchemaVersion is an opaque version tag of the skill.
	SchemaVersion string
	// PreviousHash is the predecessor's skill_hash, copied verbatim; it must
	// be "sha256:<64 lowercase hex>".
	PreviousHash string
	// Canonicalization, if set, must be "schemapin-v1".
	Canonicalization string
}

// SignatureInput is everything BuildSignature needs. The daemon fills it
// after the HSM has signed SigningDigest(Root, convention).
type SignatureInput struct {
	// Root and Manifest come from Canonicalize (on the client). They must
	// agree: BuildSignature recomputes the root from Manifest.
	Root [32]byte
	// Manifest is the file manifest matching Root.
	Manifest map[string]string
	// Domain is the signing domain; required.
	Domain string
	// SignerKid names the key; defaults to Fingerprint(PublicKey) when
	// PublicKey is set, else required.
	SignerKid string
	// SkillName is required (use ParseSkillName for upstream's default).
	SkillName string
	// SignedAt is stamped in UTC at second precision, "Z" suffix.
	SignedAt time.Time
	// Options holds the optional v1.4 fields.
	Options SignOptions
	// SignatureDER is the ECDSA signature, ASN.1 DER SEQUENCE{r, s}.
	SignatureDER []byte
	// PublicKey, when set, makes BuildSignature verify SignatureDER over
	// Root with Convention before emitting anything, so a wrong key or digest
	// from the HSM never leaves as a signature document.
	PublicKey *ecdsa.PublicKey
	// Convention is the digest convention the signature was made with;
	// empty means DigestSHA256. Only used with PublicKey.
	Convention DigestConvention
	// Fingerprint, when set, is Fingerprint(PublicKey), which a caller
	// signing many times with one key computes once (the daemon caches it
	// with the key's signer); empty, BuildSignature computes it.
	Fingerprint string
	// Verify, when set, checks the signature over the digest in place of
	// crypto/ecdsa.Verify(PublicKey, …). It MUST be a verifier of
	// PublicKey with crypto/ecdsa's rule: the daemon passes its cached
	// internal/eccheck verifier of the key, which is that at a fifth of
	// the cost.
	Verify func(digest []byte, r, s *big.Int) bool
}

// BuildSignature assembles the .schemapin.sig document for a signature
// already made over the root (spec §4.1 sign()): skill_hash is
// "sha256:"+hex(root) (DESIGN.md), optional fields are added only when set
// and then schemapin_version is "1.4", otherwise "1.3". Bad input wraps
// errdefs.ErrInvalidArgument.
func BuildSignature(in SignatureInput) (*Signature, error) {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("build signature: "+format+": %w", append(args, errdefs.ErrInvalidArgument)...)
	}
	if err := CheckSignatureInput(in); err != nil {
		return nil, err
	}
	if _, _, canonical, err := parseDERSignature(in.SignatureDER); err != nil {
		return nil, fmt.Errorf("build signature: %w", err)
	} else if !canonical {
		return nil, bad("signature is not canonical DER")
	}
	kid := in.SignerKid
	if in.PublicKey != nil {
		fp := in.Fingerprint
		if fp == "" {
			var err error
			if fp, err = Fingerprint(in.PublicKey); err != nil {
				return nil, fmt.Errorf("build signature: %w", err)
			}
		}
		if kid == "" {
			kid = fp
		}
		want := in.Convention
		if want == "" {
			want = DigestSHA256
		}
		var err error
		if in.Verify != nil {
			_, err = verifyRootWith(in.Verify, in.Root, in.SignatureDER, want)
		} else {
			_, err = verifyRootDER(in.PublicKey, in.Root, in.SignatureDER, want)
		}
		if err != nil {
			return nil, fmt.Errorf("build signature: signature does not verify with %s: %w", fp, err)
		}
	}
	if kid == "" {
		return nil, bad("signer_kid is required without a public key")
	}

	signedAt := in.SignedAt.UTC().Truncate(time.Second)
	manifest := make(map[string]string, len(in.Manifest))
	for k, v := range in.Manifest {
		manifest[k] = v
	}
	s := &Signature{
		SchemapinVersion: SchemapinVersion13,
		SkillName:        in.SkillName,
		SkillHash:        FingerprintPrefix + hex.EncodeToString(in.Root[:]),
		Signature:        base64.StdEncoding.EncodeToString(in.SignatureDER),
		SignedAt:         signedAt.Format(time.RFC3339),
		SchemaVersion:    in.Options.SchemaVersion,
		PreviousHash:     in.Options.PreviousHash,
		Canonicalization: in.Options.Canonicalization,
		Domain:           in.Domain,
		SignerKid:        kid,
		FileManifest:     manifest,
	}
	if in.Options.ExpiresIn > 0 {
		s.ExpiresAt = signedAt.Add(in.Options.ExpiresIn).Truncate(time.Second).Format(time.RFC3339)
	}
	if s.ExpiresAt != "" || s.SchemaVersion != "" || s.PreviousHash != "" || s.Canonicalization != "" {
		s.SchemapinVersion = SchemapinVersion14
	}
	return s, nil
}

// CheckSignatureInput checks everything BuildSignature checks except the
// signature itself: the daemon calls it before asking the HSM to sign, so a
// request that would be refused never costs an HSM operation.
func CheckSignatureInput(in SignatureInput) error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("build signature: "+format+": %w", append(args, errdefs.ErrInvalidArgument)...)
	}
	root, err := ComputeRoot(in.Manifest)
	if err != nil {
		return fmt.Errorf("build signature: %w", err)
	}
	if root != in.Root {
		return bad("root %x does not match the manifest (its root is %x)", in.Root, root)
	}
	if strings.TrimSpace(in.Domain) == "" {
		return bad("domain is required")
	}
	if strings.TrimSpace(in.SkillName) == "" {
		return bad("skill name is required")
	}
	if in.SignedAt.IsZero() {
		return bad("signed_at is required")
	}
	if in.Options.ExpiresIn < 0 {
		return bad("negative expiry %s", in.Options.ExpiresIn)
	}
	if in.Options.PreviousHash != "" && !IsSHA256Ref(in.Options.PreviousHash) {
		return bad("previous_hash %q is not sha256:<64 lowercase hex>", in.Options.PreviousHash)
	}
	if c := in.Options.Canonicalization; c != "" && c != CanonicalizationV1 {
		return bad("canonicalization %q is not %q", c, CanonicalizationV1)
	}
	return nil
}

// BuildSignatureDocument is BuildSignature followed by Encode: the bytes to
// write as .schemapin.sig.
func BuildSignatureDocument(in SignatureInput) ([]byte, error) {
	s, err := BuildSignature(in)
	if err != nil {
		return nil, err
	}
	return s.Encode()
}

// DigestConvention names what the ECDSA signature's digest is (spec §4).
type DigestConvention string

const (
	// DigestSHA256 is Python/JS/Rust: digest = SHA-256(root), i.e.
	// ECDSA-with-SHA256 over the 32 root bytes. signerd signs with it by
	// default (DESIGN.md).
	DigestSHA256 DigestConvention = "sha256"
	// DigestGo is the official Go SDK: digest = root itself.
	DigestGo DigestConvention = "go"
	// DigestAny, in VerifyOptions only, accepts either and reports which.
	DigestAny DigestConvention = "any"
)

// ParseDigestConvention parses "sha256", "go" or "any" (the CLI's --digest);
// "" means "any" for verification.
func ParseDigestConvention(s string) (DigestConvention, error) {
	switch c := DigestConvention(strings.ToLower(strings.TrimSpace(s))); c {
	case DigestSHA256, DigestGo, DigestAny:
		return c, nil
	case "":
		return DigestAny, nil
	default:
		return "", fmt.Errorf("digest convention %q: want sha256, go or any: %w", s, errdefs.ErrInvalidArgument)
	}
}

// SigningDigest returns the 32 bytes to hand to an ECDSA signer (e.g.
// crypto.Signer.Sign(rand, digest, crypto.SHA256), as crypto11 does) for
// root under convention c: SHA-256(root) for "sha256" (and for ""), root
// itself for "go".
func SigningDigest(root [32]byte, c DigestConvention) ([]byte, error) {
	switch c {
	case DigestSHA256, "":
		d := sha256.Sum256(root[:])
		return d[:], nil
	case DigestGo:
		return bytes.Clone(root[:]), nil
	default:
		return nil, fmt.Errorf("signing digest: convention %q: want sha256 or go: %w", c, errdefs.ErrInvalidArgument)
	}
}

// Errors from signature checking. ErrSignatureEncoding means the value is
// not base64 of a DER ECDSA signature; ErrSignatureMismatch means it is one
// but does not verify.
var (
	ErrSignatureEncoding = errors.New("signature is not base64 DER ECDSA")
	ErrSignatureMismatch = errors.New("signature verification failed")
)

// VerifyRootSignature checks signatureB64 (the document's "signature")
// over root with pub. want is DigestSHA256, DigestGo, or DigestAny/"" to
// accept either; it returns the convention that verified. Decoding is as
// lenient as upstream Go (base64 skipping CR/LF, DER with trailing bytes),
// but non-canonical DER only with the Go convention, the only one whose
// reference reader accepts it; noncanonical reports such leniency was
// needed.
func VerifyRootSignature(pub *ecdsa.PublicKey, root [32]byte, signatureB64 string, want DigestConvention) (c DigestConvention, noncanonical bool, err error) {
	der, err := decodeSignatureValue(signatureB64)
	if err != nil {
		return "", false, err
	}
	_, _, canonical, err := parseDERSignature(der)
	if err != nil {
		return "", false, err
	}
	if !canonical {
		// Only upstream Go reads DER leniently (asn1.Unmarshal ignores
		// trailing bytes), and Go verifies only its own digest convention.
		// Python (cryptography), JavaScript (node/OpenSSL) and Rust (p256)
		// refuse such an encoding, so with the SHA-256 convention no
		// upstream SDK would accept it and neither do we.
		switch want {
		case DigestAny, "":
			want = DigestGo
		case DigestSHA256:
			return "", true, fmt.Errorf("%w: the DER encoding is not canonical, which only the Go SDK (digest convention go) accepts", ErrSignatureMismatch)
		}
	}
	c, err = verifyRootDER(pub, root, der, want)
	return c, !canonical, err
}

// verifyRootDER tries the allowed conventions, SHA-256 first (the default
// and the newest maintainer artifacts). Both verifying for one signature
// would need a SHA-256 preimage (spec §4), so the order only saves time.
func verifyRootDER(pub *ecdsa.PublicKey, root [32]byte, der []byte, want DigestConvention) (DigestConvention, error) {
	if pub == nil {
		return "", fmt.Errorf("verify: nil public key: %w", errdefs.ErrInvalidArgument)
	}
	return verifyRootWith(func(d []byte, r, s *big.Int) bool { return ecdsa.Verify(pub, d, r, s) }, root, der, want)
}

// verifyRootWith is verifyRootDER with the ECDSA verification given.
func verifyRootWith(verify func(digest []byte, r, s *big.Int) bool, root [32]byte, der []byte, want DigestConvention) (DigestConvention, error) {
	r, s, _, err := parseDERSignature(der)
	if err != nil {
		return "", err
	}
	var order []DigestConvention
	switch want {
	case DigestAny, "":
		order = []DigestConvention{DigestSHA256, DigestGo}
	case DigestSHA256, DigestGo:
		order = []DigestConvention{want}
	default:
		return "", fmt.Errorf("verify: convention %q: %w", want, errdefs.ErrInvalidArgument)
	}
	for _, c := range order {
		d, _ := SigningDigest(root, c)
		if verify(d, r, s) {
			return c, nil
		}
	}
	return "", ErrSignatureMismatch
}

// decodeSignatureValue decodes standard padded base64. Go's StdEncoding
// skips CR and LF, which is upstream Go's leniency (spec §2); nothing else
// is tolerated.
func decodeSignatureValue(s string) ([]byte, error) {
	der, err := base64.StdEncoding.DecodeString(s)
	if err != nil || len(der) == 0 {
		return nil, fmt.Errorf("%w: base64: %v", ErrSignatureEncoding, err)
	}
	return der, nil
}

// parseDERSignature decodes SEQUENCE{INTEGER r, INTEGER s} as upstream Go's
// asn1.Unmarshal does, which ignores trailing bytes; canonical is false
// when there were any or when the encoding is not the minimal DER we would
// write. Canonical input (what crypto/ecdsa writes, and all this package
// accepts from a signer) takes parseCanonicalDER's fast path; everything
// else is judged by encoding/asn1 as before.
func parseDERSignature(der []byte) (r, s *big.Int, canonical bool, err error) {
	if r, s, ok := parseCanonicalDER(der); ok {
		return r, s, true, nil
	}
	var sig struct{ R, S *big.Int }
	rest, err := asn1.Unmarshal(der, &sig)
	if err != nil {
		return nil, nil, false, fmt.Errorf("%w: %v", ErrSignatureEncoding, err)
	}
	if sig.R == nil || sig.S == nil || sig.R.Sign() <= 0 || sig.S.Sign() <= 0 {
		return nil, nil, false, fmt.Errorf("%w: r and s must be positive", ErrSignatureEncoding)
	}
	canonical = len(rest) == 0
	if canonical {
		re, err := asn1.Marshal(sig)
		canonical = err == nil && bytes.Equal(re, der)
	}
	return sig.R, sig.S, canonical, nil
}

// SignatureR is the r of a DER ECDSA signature as verification reads it
// (parseDERSignature): the part of a signature (r, s) that (r, n−s), which
// verifies too, keeps, so that it names the one signing it came from.
func SignatureR(der []byte) (*big.Int, bool) {
	r, _, _, err := parseDERSignature(der)
	return r, err == nil
}

// MatchSkillHash reports which convention skillHash follows for root:
// "root" for "sha256:"+hex(root) (Go, Python, JS) or "sha256(root)" for
// "sha256:"+hex(SHA-256(root)) (Rust, spec §0.2). ok is false when it is
// neither. Hex case is ignored: nothing upstream verifies this field.
func MatchSkillHash(skillHash string, root [32]byte) (form string, ok bool) {
	h, found := strings.CutPrefix(skillHash, FingerprintPrefix)
	if !found {
		return "", false
	}
	if strings.EqualFold(h, hex.EncodeToString(root[:])) {
		return "root", true
	}
	d := sha256.Sum256(root[:])
	if strings.EqualFold(h, hex.EncodeToString(d[:])) {
		return "sha256(root)", true
	}
	return "", false
}

// expectObject rejects anything but a JSON object (json.Unmarshal would
// accept null into a struct and leave it empty).
func expectObject(data []byte) error {
	t := bytes.TrimLeft(data, " \t\r\n")
	if len(t) == 0 || t[0] != '{' {
		return fmt.Errorf("not a JSON object: %w", errdefs.ErrInvalidArgument)
	}
	return nil
}

// readDocument reads at most limit bytes of a regular file, following a
// symlink to it (as the SDKs read the signature document) but refusing
// FIFOs and devices without blocking on them. Missing wraps ErrNotFound;
// too large wraps ErrInvalidArgument.
func readDocument(path string, limit int64) ([]byte, error) {
	f, err := openRegularFlags(path, openDocumentFlags)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("%s: %w: %w", path, errdefs.ErrNotFound, err)
		}
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(data)) > limit {
		return nil, fmt.Errorf("%s is larger than %d bytes: %w", path, limit, errdefs.ErrInvalidArgument)
	}
	return data, nil
}
