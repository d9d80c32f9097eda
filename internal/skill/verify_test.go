package skill

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/signerd/signerd/internal/errdefs"
)

// matrixNow is after every expires_at in the fixtures except the v1.4
// vector's (2126), so the expired vector is expired whatever the clock.
var matrixNow = time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC)

const thirdKeyPEM = "thirdkey-0fa46514.recovered_pub.pem"

// keyFor returns the public key PEM a fixture folder was signed with.
func keyFor(tb testing.TB, rel string) []byte {
	if strings.HasPrefix(rel, "real-world-signed-skills/") {
		return readFixture(tb, "real-world-signed-skills", thirdKeyPEM)
	}
	return readFixture(tb, "vectors", "keys", "pub.pem")
}

// TestVerifyMatrix runs the vectors/ entries of EXPECTED-verify-matrix.json
// (spec §14.2 and §14.3); TestConformanceVerifyMatrix runs the six
// real-world ones.
func TestVerifyMatrix(t *testing.T) {
	runVerifyMatrix(t, "vectors/", 7)
}

// runVerifyMatrix runs the matrix entries under prefix (there must be
// want of them, out of 13): with default options we accept what Go or
// Python/JS accepts and name the convention; requiring one convention
// accepts exactly what that SDK family accepts; everything else is
// signature_invalid.
func runVerifyMatrix(t *testing.T, prefix string, want int) {
	var matrix map[string]map[string]string
	if err := json.Unmarshal(readFixture(t, "vectors", "EXPECTED-verify-matrix.json"), &matrix); err != nil {
		t.Fatal(err)
	}
	if len(matrix) != 13 {
		t.Fatalf("%d matrix entries, want 13", len(matrix))
	}
	names := slices.Sorted(func(yield func(string) bool) {
		for k := range matrix {
			if strings.HasPrefix(k, prefix) && !yield(k) {
				return
			}
		}
	})
	if len(names) != want {
		t.Fatalf("%d matrix entries under %s, want %d", len(names), prefix, want)
	}
	for _, rel := range names {
		exp := matrix[rel]
		goValid := strings.HasPrefix(exp["go"], "valid")
		pyValid := strings.HasPrefix(exp["python"], "valid")
		if pyValid != strings.HasPrefix(exp["javascript"], "valid") {
			t.Fatalf("%s: Python and JS disagree; the test assumes they do not", rel)
		}
		expired := strings.Contains(exp["go"]+exp["python"], "signature_expired")
		t.Run(rel, func(t *testing.T) {
			dir := copyFixtureDir(t, strings.Split(rel, "/")...)
			sig, err := LoadSignature(dir)
			if err != nil {
				t.Fatal(err)
			}
			pem := keyFor(t, rel)
			var disc *Discovery
			if !strings.HasPrefix(rel, "real-world") {
				disc, err = ParseDiscovery(readFixture(t, "vectors", "discovery.example.com.json"))
				if err != nil {
					t.Fatal(err)
				}
				pem = nil
			}
			for _, want := range []DigestConvention{DigestAny, DigestGo, DigestSHA256} {
				pins := NewPinStore()
				r, err := VerifyOffline(t.Context(), VerifyInput{
					Dir: dir, Discovery: disc, PublicKeyPEM: pem, Domain: sig.Domain, PinStore: pins,
					Options: VerifyOptions{Digest: want, Now: matrixNow},
				})
				if err != nil {
					t.Fatal(err)
				}
				wantValid := map[DigestConvention]bool{DigestAny: goValid || pyValid, DigestGo: goValid, DigestSHA256: pyValid}[want]
				if r.Valid != wantValid {
					t.Fatalf("digest=%s: valid=%v, want %v (%s: %s)", want, r.Valid, wantValid, r.ErrorCode, r.ErrorMessage)
				}
				if !r.Valid {
					if r.ErrorCode != CodeSignatureInvalid || r.Domain != sig.Domain {
						t.Errorf("digest=%s: %s / domain %q, want signature_invalid", want, r.ErrorCode, r.Domain)
					}
					if pins.Len() != 0 {
						t.Errorf("digest=%s: a failed verification pinned a key", want)
					}
					continue
				}
				wantConv := DigestSHA256
				if goValid {
					wantConv = DigestGo
				}
				if r.DigestConvention != wantConv {
					t.Errorf("digest=%s: convention %s, want %s", want, r.DigestConvention, wantConv)
				}
				wantWarnings := []string{}
				if expired {
					wantWarnings = []string{WarningSignatureExpired}
				}
				if r.Expired != expired || !slices.Equal(r.Warnings, wantWarnings) {
					t.Errorf("digest=%s: expired=%v warnings=%v, want expired=%v", want, r.Expired, r.Warnings, expired)
				}
				if r.KeyPinning == nil || r.KeyPinning.Status != PinFirstUse || pins.Check(sig.SkillName, sig.Domain, r.KeyFingerprint) != PinPinned {
					t.Errorf("digest=%s: not pinned after success: %+v", want, r.KeyPinning)
				}
				if r.Err() != nil {
					t.Errorf("Err() = %v on a valid result", r.Err())
				}
			}
			verdict := "INVALID signature_invalid"
			if goValid || pyValid {
				verdict = "valid (" + map[bool]string{true: "go", false: "sha256"}[goValid] + ")"
				if expired {
					verdict += " [signature_expired]"
				}
			}
			t.Logf("%-45s %s", rel, verdict)
		})
	}
}

// sampleInput is a valid verification of the Go-signed sample skill.
func sampleInput(t *testing.T) VerifyInput {
	t.Helper()
	disc, err := ParseDiscovery(readFixture(t, "vectors", "discovery.example.com.json"))
	if err != nil {
		t.Fatal(err)
	}
	return VerifyInput{
		Dir:       copyFixtureDir(t, "vectors", "sample-skill-go-signed"),
		Discovery: disc,
		Domain:    "example.com",
		Options:   VerifyOptions{Now: matrixNow},
	}
}

func editSignature(t *testing.T, dir string, edit func(*Signature)) {
	t.Helper()
	s, err := LoadSignature(dir)
	if err != nil {
		t.Fatal(err)
	}
	edit(s)
	b, _ := s.Encode()
	if err := os.WriteFile(filepath.Join(dir, SignatureFilename), b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestVerifyNoncanonicalDERNeedsGoConvention: DER with trailing bytes is
// accepted by upstream Go's asn1.Unmarshal only, and Go verifies only the go
// digest convention. A SHA-256-convention signature (Python, JS, Rust) with
// trailing DER bytes is refused by every upstream verifier of that
// convention (OpenSSL and p256 parse DER strictly), so it must not verify.
func TestVerifyNoncanonicalDERNeedsGoConvention(t *testing.T) {
	for _, want := range []DigestConvention{DigestAny, DigestSHA256} {
		t.Run(string(want), func(t *testing.T) {
			in := sampleInput(t)
			in.Dir = copyFixtureDir(t, "vectors", "sample-skill-python-signed")
			in.Options.Digest = want
			r, err := VerifyOffline(t.Context(), in)
			if err != nil || !r.Valid || r.DigestConvention != DigestSHA256 {
				t.Fatalf("untouched python-signed skill: %+v, %v", r, err)
			}
			editSignature(t, in.Dir, func(s *Signature) {
				der, _ := base64.StdEncoding.DecodeString(s.Signature)
				s.Signature = base64.StdEncoding.EncodeToString(append(der, 0))
			})
			r, err = VerifyOffline(t.Context(), in)
			if err != nil {
				t.Fatal(err)
			}
			if r.Valid || r.ErrorCode != CodeSignatureInvalid {
				t.Fatalf("sha256-convention signature with trailing DER bytes: valid=%v %s %v, want signature_invalid", r.Valid, r.ErrorCode, r.Warnings)
			}
		})
	}
}

// TestVerifyUTF16OrderNeedsSHA256Convention: the UTF-16 path order is the
// JavaScript SDK's, which signs only with digest SHA-256(root); a Go-
// convention signature over a UTF-16-order root is no SDK's and must not
// verify.
func TestVerifyUTF16OrderNeedsSHA256Convention(t *testing.T) {
	priv, err := ParsePrivateKeyPEM(readFixture(t, "vectors", "keys", "priv_pkcs8.pem"))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	for name, content := range map[string]string{"SKILL.md": "x", "\U0001F600.md": "a", "\uFF46.md": "b"} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	m, err := Canonicalize(t.Context(), dir)
	if err != nil {
		t.Fatal(err)
	}
	root16, err := ComputeRootUTF16(m.Files)
	if err != nil || root16 == m.Root {
		t.Fatalf("UTF-16 root: %x, %v", root16, err)
	}
	for _, c := range []DigestConvention{DigestSHA256, DigestGo} {
		d, _ := SigningDigest(root16, c)
		der, err := ecdsa.SignASN1(rand.Reader, priv, d)
		if err != nil {
			t.Fatal(err)
		}
		doc := &Signature{SchemapinVersion: "1.3", SkillName: "s", SkillHash: "sha256:" + hex.EncodeToString(root16[:]),
			Signature: base64.StdEncoding.EncodeToString(der), SignedAt: "2026-01-01T00:00:00Z", Domain: "example.com",
			SignerKid: "k", FileManifest: m.Files}
		b, _ := doc.Encode()
		if err := os.WriteFile(filepath.Join(dir, SignatureFilename), b, 0o644); err != nil {
			t.Fatal(err)
		}
		in := sampleInput(t)
		in.Dir = dir
		r, err := VerifyOffline(t.Context(), in)
		if err != nil {
			t.Fatal(err)
		}
		if want := c == DigestSHA256; r.Valid != want {
			t.Errorf("%s convention over the UTF-16-order root: valid=%v (%s, %s), want %v", c, r.Valid, r.PathOrder, r.ErrorCode, want)
		}
	}
}

// TestVerifyWarnsOfUnsignedEntries: a symlink added to a signed folder
// keeps its signature valid in every SDK (they all skip symlinks), so the
// result says it is there.
func TestVerifyWarnsOfUnsignedEntries(t *testing.T) {
	in := sampleInput(t)
	in.Dir = copyFixtureDir(t, "vectors", "sample-skill-python-signed")
	r, err := VerifyOffline(t.Context(), in)
	if err != nil || !r.Valid || slices.Contains(r.Warnings, WarningUnsignedEntries) || r.Unsigned != nil {
		t.Fatalf("the untouched fixture: %+v, %v", r, err)
	}
	if err := os.Symlink("/tmp/evil.py", filepath.Join(in.Dir, "helper.py")); err != nil {
		t.Skip(err)
	}
	r, err = VerifyOffline(t.Context(), in)
	if err != nil {
		t.Fatal(err)
	}
	if !r.Valid || !slices.Contains(r.Warnings, WarningUnsignedEntries) || !slices.Equal(r.Unsigned, []string{"helper.py"}) {
		t.Fatalf("with a symlink added: valid=%v warnings=%q unsigned=%q", r.Valid, r.Warnings, r.Unsigned)
	}
}

// TestVerifySymlinkedSignature: every SDK reads a .schemapin.sig that is
// a symlink through it; so does signerd, and the link is the folder's
// document, not an entry it warns of.
func TestVerifySymlinkedSignature(t *testing.T) {
	in := sampleInput(t)
	in.Dir = copyFixtureDir(t, "vectors", "sample-skill-python-signed")
	sig := filepath.Join(in.Dir, SignatureFilename)
	moved := filepath.Join(t.TempDir(), "skill.sig")
	if err := os.Rename(sig, moved); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(moved, sig); err != nil {
		t.Skip(err)
	}
	r, err := VerifyOffline(t.Context(), in)
	if err != nil || !r.Valid || r.Unsigned != nil || slices.Contains(r.Warnings, WarningUnsignedEntries) {
		t.Fatalf("a symlinked .schemapin.sig: %+v, %v", r, err)
	}
}

func TestVerifyFlow(t *testing.T) {
	other, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	otherPEM, _ := EncodePublicKeyPEM(&other.PublicKey)
	otherFP, _ := Fingerprint(&other.PublicKey)
	testPub, _ := ParsePublicKeyPEM(readFixture(t, "vectors", "keys", "pub.pem"))

	tests := []struct {
		name     string
		mutate   func(t *testing.T, in *VerifyInput)
		code     ErrorCode // "" = valid
		reason   *errdefs.VerificationError
		msg      string // substring of the message
		warnings []string
		noDomain bool
		domain   string // result domain when not example.com
	}{
		{name: "valid", mutate: func(*testing.T, *VerifyInput) {}},
		{name: "no signature file", mutate: func(t *testing.T, in *VerifyInput) {
			os.Remove(filepath.Join(in.Dir, SignatureFilename))
		}, code: CodeSignatureInvalid, reason: errdefs.ErrSignatureNotFound, msg: "No .schemapin.sig found in skill directory", noDomain: true},
		{name: "unparseable signature file", mutate: func(t *testing.T, in *VerifyInput) {
			os.WriteFile(filepath.Join(in.Dir, SignatureFilename), []byte("{nope"), 0o644)
		}, code: CodeSignatureInvalid, reason: errdefs.ErrMalformedSignature, noDomain: true},
		{name: "signature JSON given", mutate: func(t *testing.T, in *VerifyInput) {
			in.SignatureJSON, _ = os.ReadFile(filepath.Join(in.Dir, SignatureFilename))
			os.Remove(filepath.Join(in.Dir, SignatureFilename))
		}},
		{name: "unsupported canonicalization", mutate: func(t *testing.T, in *VerifyInput) {
			editSignature(t, in.Dir, func(s *Signature) { s.Canonicalization = "schemapin-v2" })
		}, code: CodeCanonicalizationUnsupported, msg: "Unsupported canonicalization algorithm: schemapin-v2", reason: errdefs.ErrMalformedSignature},
		{name: "no key at all", mutate: func(t *testing.T, in *VerifyInput) { in.Discovery = nil },
			code: CodeDiscoveryInvalid, msg: "Discovery document missing or invalid public_key_pem", reason: errdefs.ErrUntrustedSigner},
		{name: "PEM without marker", mutate: func(t *testing.T, in *VerifyInput) { in.Discovery.PublicKeyPEM = "MFkw" },
			code: CodeDiscoveryInvalid},
		{name: "unparseable PEM", mutate: func(t *testing.T, in *VerifyInput) {
			in.Discovery.PublicKeyPEM = "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n"
		}, code: CodeKeyNotFound, msg: "Failed to load public key"},
		{name: "revoked in discovery", mutate: func(t *testing.T, in *VerifyInput) { in.Discovery.RevokedKeys = []string{"sha256:00", testKeyFP} },
			code: CodeKeyRevoked, msg: "key " + testKeyFP + " is in simple revocation list", reason: errdefs.ErrKeyRevoked},
		{name: "revoked by document", mutate: func(t *testing.T, in *VerifyInput) {
			in.RevocationJSON = readFixture(t, "vectors", "revocation.example.com.json")
		}, code: CodeKeyRevoked, msg: "is revoked: key_compromise", reason: errdefs.ErrKeyRevoked},
		{name: "revocation document for another key", mutate: func(t *testing.T, in *VerifyInput) {
			in.RevocationJSON = []byte(`{"revoked_keys":[{"fingerprint":"` + otherFP + `","reason":"superseded"}]}`)
		}},
		{name: "unparseable revocation document fails closed", mutate: func(t *testing.T, in *VerifyInput) { in.RevocationJSON = []byte("<html>") },
			code: CodeDiscoveryInvalid, msg: "fail-closed", reason: errdefs.ErrUntrustedSigner},
		{name: "empty revocation document fails closed", mutate: func(t *testing.T, in *VerifyInput) { in.RevocationJSON = []byte{} },
			code: CodeDiscoveryInvalid},
		{name: "other key", mutate: func(t *testing.T, in *VerifyInput) { in.Discovery = nil; in.PublicKeyPEM = otherPEM },
			code: CodeSignatureInvalid, msg: "Signature verification failed", reason: errdefs.ErrInvalidSignature},
		{name: "public key value", mutate: func(t *testing.T, in *VerifyInput) { in.Discovery = nil; in.PublicKey = testPub }},
		{name: "tampered file", mutate: func(t *testing.T, in *VerifyInput) {
			os.WriteFile(filepath.Join(in.Dir, "scripts", "run.py"), []byte("rm -rf /\n"), 0o644)
		}, code: CodeSignatureInvalid, reason: errdefs.ErrPackageTampered},
		{name: "added file", mutate: func(t *testing.T, in *VerifyInput) {
			os.WriteFile(filepath.Join(in.Dir, ".env"), nil, 0o644)
		}, code: CodeSignatureInvalid, reason: errdefs.ErrPackageTampered},
		{name: "only the signature left", mutate: func(t *testing.T, in *VerifyInput) {
			os.RemoveAll(filepath.Join(in.Dir, "scripts"))
			os.RemoveAll(filepath.Join(in.Dir, "examples"))
			os.Remove(filepath.Join(in.Dir, "SKILL.md"))
		}, code: CodeSchemaCanonicalizationFailed, msg: "Failed to canonicalize skill", reason: errdefs.ErrPackageTampered},
		{name: "garbage signature value", mutate: func(t *testing.T, in *VerifyInput) {
			editSignature(t, in.Dir, func(s *Signature) { s.Signature = "not base64!" })
		}, code: CodeSignatureInvalid, reason: errdefs.ErrMalformedSignature},
		{name: "signature domain differs from key domain", mutate: func(t *testing.T, in *VerifyInput) { in.Domain = "evil.example" },
			code: CodeDomainMismatch, msg: "Signature domain example.com does not match", reason: errdefs.ErrUntrustedSigner},
		{name: "edited signature domain", mutate: func(t *testing.T, in *VerifyInput) {
			editSignature(t, in.Dir, func(s *Signature) { s.Domain = "evil.example" })
		}, code: CodeDomainMismatch, domain: "evil.example"},
		{name: "domain compared as a DNS name", mutate: func(t *testing.T, in *VerifyInput) { in.Domain = "EXAMPLE.com." }},
		{name: "no expected domain: upstream behaviour", mutate: func(t *testing.T, in *VerifyInput) { in.Domain = "" }},
		{name: "signature without domain", mutate: func(t *testing.T, in *VerifyInput) {
			editSignature(t, in.Dir, func(s *Signature) { s.Domain = "" })
		}, noDomain: true},
		{name: "DNS TXT matches", mutate: func(t *testing.T, in *VerifyInput) {
			in.DNSTXT = string(readFixture(t, "vectors", "dns-txt.example.com.txt"))
		}},
		{name: "DNS TXT names another key", mutate: func(t *testing.T, in *VerifyInput) { in.DNSTXT = "v=schemapin1; fp=" + otherFP },
			code: CodeDomainMismatch, msg: "DNS TXT fingerprint mismatch: discovery=" + testKeyFP + ", dns=" + otherFP},
		{name: "DNS TXT malformed", mutate: func(t *testing.T, in *VerifyInput) { in.DNSTXT = "v=schemapin1" },
			code: CodeDiscoveryInvalid, msg: "missing required 'fp'"},
		{name: "expires_at unparseable", mutate: func(t *testing.T, in *VerifyInput) {
			editSignature(t, in.Dir, func(s *Signature) { s.ExpiresAt = "2026-01-01" })
		}, warnings: []string{WarningExpiresAtUnparseable}},
		{name: "skill_hash matches neither convention", mutate: func(t *testing.T, in *VerifyInput) {
			editSignature(t, in.Dir, func(s *Signature) { s.SkillHash = "sha256:00" })
		}, warnings: []string{WarningSkillHashMismatch}},
		{name: "signer_kid names another key", mutate: func(t *testing.T, in *VerifyInput) {
			editSignature(t, in.Dir, func(s *Signature) { s.SignerKid = otherFP })
		}, warnings: []string{WarningSignerKidMismatch}},
		{name: "DER with trailing bytes (Go accepts)", mutate: func(t *testing.T, in *VerifyInput) {
			editSignature(t, in.Dir, func(s *Signature) {
				der, _ := base64.StdEncoding.DecodeString(s.Signature)
				s.Signature = base64.StdEncoding.EncodeToString(append(der, 0, 0))
			})
		}, warnings: []string{WarningSignatureEncoding}},
		{name: "base64 with CRLF (Go accepts)", mutate: func(t *testing.T, in *VerifyInput) {
			editSignature(t, in.Dir, func(s *Signature) { s.Signature = s.Signature[:40] + "\r\n" + s.Signature[40:] })
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := sampleInput(t)
			tt.mutate(t, &in)
			r, err := VerifyOffline(t.Context(), in)
			if err != nil {
				t.Fatal(err)
			}
			if tt.code == "" {
				if !r.Valid {
					t.Fatalf("invalid: %s: %s", r.ErrorCode, r.ErrorMessage)
				}
				if r.DigestConvention != DigestGo || r.DeveloperName == "" && in.Discovery != nil {
					t.Errorf("%+v", r)
				}
				w := tt.warnings
				if w == nil {
					w = []string{}
				}
				if !slices.Equal(r.Warnings, w) {
					t.Errorf("warnings %q, want %q", r.Warnings, w)
				}
			} else {
				if r.Valid || r.ErrorCode != tt.code {
					t.Fatalf("got valid=%v %s (%s), want %s", r.Valid, r.ErrorCode, r.ErrorMessage, tt.code)
				}
				if !strings.Contains(r.ErrorMessage, tt.msg) {
					t.Errorf("message %q lacks %q", r.ErrorMessage, tt.msg)
				}
				if tt.reason != nil && !errors.Is(r.Err(), tt.reason) {
					t.Errorf("Err() = %v (%s), want reason %s", r.Err(), errdefs.ReasonOf(r.Err()), tt.reason.Reason)
				}
				if r.Err() == nil {
					t.Error("Err() is nil for a failure")
				}
			}
			wantDomain := map[bool]string{true: "", false: "example.com"}[tt.noDomain]
			if tt.domain != "" {
				wantDomain = tt.domain
			}
			if r.Domain != wantDomain {
				t.Errorf("domain %q, want %q", r.Domain, wantDomain)
			}
		})
	}
}

func TestVerifyBadInput(t *testing.T) {
	testPub, _ := ParsePublicKeyPEM(readFixture(t, "vectors", "keys", "pub.pem"))
	for name, in := range map[string]VerifyInput{
		"two key sources":      {Dir: t.TempDir(), PublicKey: testPub, PublicKeyPEM: []byte("x")},
		"nothing to verify":    {PublicKey: testPub},
		"root but no sig":      {Root: &[32]byte{}, PublicKey: testPub},
		"unknown digest":       {Dir: t.TempDir(), Options: VerifyOptions{Digest: "md5"}},
		"key and discovery":    {Dir: t.TempDir(), PublicKey: testPub, Discovery: &Discovery{}},
		"pem and discovery":    {Dir: t.TempDir(), PublicKeyPEM: []byte{}, Discovery: &Discovery{}},
		"all three key inputs": {Dir: t.TempDir(), PublicKey: testPub, PublicKeyPEM: []byte{}, Discovery: &Discovery{}},
	} {
		if _, err := VerifyOffline(t.Context(), in); !errors.Is(err, errdefs.ErrInvalidArgument) {
			t.Errorf("%s: err = %v", name, err)
		}
	}
	in := sampleInput(t)
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if _, err := VerifyOffline(ctx, in); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled: %v", err)
	}
}

// TestVerifyPrecomputedRoot is the daemon's path: the client sent the root
// and the signature document, there is no folder.
func TestVerifyPrecomputedRoot(t *testing.T) {
	in := sampleInput(t)
	m, _ := Canonicalize(t.Context(), in.Dir)
	sigJSON, _ := os.ReadFile(filepath.Join(in.Dir, SignatureFilename))
	in.Dir, in.Root, in.SignatureJSON = "", &m.Root, sigJSON
	r, err := VerifyOffline(t.Context(), in)
	if err != nil || !r.Valid || r.SkillHash != m.SkillHash() {
		t.Fatalf("%+v %v", r, err)
	}
	bad := m.Root
	bad[0] ^= 1
	in.Root = &bad
	if r, _ := VerifyOffline(t.Context(), in); r.Valid || !errors.Is(r.Err(), errdefs.ErrPackageTampered) {
		t.Errorf("%+v", r)
	}
}

func TestVerifyPinning(t *testing.T) {
	pins := NewPinStore()
	run := func(in VerifyInput) *Result {
		t.Helper()
		in.PinStore = pins
		r, err := VerifyOffline(t.Context(), in)
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	// A failing verification never pins (upstream pins first, spec §16.5).
	tampered := sampleInput(t)
	tampered.Dir = copyFixtureDir(t, "vectors", "sample-skill-go-signed-then-tampered")
	if r := run(tampered); r.Valid || pins.Len() != 0 {
		t.Fatalf("tampered skill pinned: %+v, %d pins", r, pins.Len())
	}
	mismatch := sampleInput(t)
	mismatch.DNSTXT = "v=schemapin1; fp=sha256:" + strings.Repeat("0", 64)
	if r := run(mismatch); r.Valid || pins.Len() != 0 {
		t.Fatal("DNS mismatch pinned")
	}
	wrongDomain := sampleInput(t)
	wrongDomain.Domain = "other.example"
	if r := run(wrongDomain); r.Valid || pins.Len() != 0 {
		t.Fatal("domain mismatch pinned")
	}

	if r := run(sampleInput(t)); !r.Valid || r.KeyPinning.Status != PinFirstUse || r.ToolID != "sample-skill" {
		t.Fatalf("first use: %+v", r)
	}
	if got := pins.Pinned("sample-skill", "example.com"); !slices.Equal(got, []string{testKeyFP}) {
		t.Fatalf("pins %v", got)
	}
	if r := run(sampleInput(t)); !r.Valid || r.KeyPinning.Status != PinPinned {
		t.Fatalf("second use: %+v", r)
	}

	// A different key for the same tool@domain is refused before any crypto.
	other, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	otherPEM, _ := EncodePublicKeyPEM(&other.PublicKey)
	in := sampleInput(t)
	in.Discovery, in.PublicKeyPEM = nil, otherPEM
	if r := run(in); r.Valid || r.ErrorCode != CodeKeyPinMismatch || r.ErrorMessage != "Key fingerprint changed since last use" {
		t.Fatalf("%+v", r)
	}
	// An explicit tool id is its own pin.
	in = sampleInput(t)
	in.ToolID = "custom"
	if r := run(in); !r.Valid || r.KeyPinning.Status != PinFirstUse || pins.Check("custom", "example.com", testKeyFP) != PinPinned {
		t.Fatalf("%+v", r)
	}
	// The store round-trips in upstream's flat shape.
	b, _ := pins.Encode()
	if string(b) != `{"custom@example.com":"`+testKeyFP+`","sample-skill@example.com":"`+testKeyFP+`"}` {
		t.Errorf("%s", b)
	}
}

// TestResultJSON checks the upstream result shape (spec §6.4).
func TestResultJSON(t *testing.T) {
	in := sampleInput(t)
	in.Dir = copyFixtureDir(t, "vectors", "sample-skill-go-v14-signed")
	in.PinStore = NewPinStore()
	r, err := VerifyOffline(t.Context(), in)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := json.Marshal(r)
	want := `{"valid":true,"domain":"example.com","developer_name":"Example Corp","key_pinning":{"status":"first_use"},` +
		`"expires_at":"2126-10-29T01:24:21Z","schema_version":"2.1.0",` +
		`"previous_hash":"sha256:55f3de59110768e8e8aa1f9166716549b08c8b4dfcb9ab054a6e80f7c2957e2a","digest_convention":"go","path_order":"utf8"}`
	if string(got) != want {
		t.Errorf("valid:\n got %s\nwant %s", got, want)
	}

	in = sampleInput(t)
	in.Dir = copyFixtureDir(t, "vectors", "sample-skill-go-expired-signed")
	r, _ = VerifyOffline(t.Context(), in)
	got, _ = json.Marshal(r)
	want = `{"valid":true,"domain":"example.com","developer_name":"Example Corp","warnings":["signature_expired"],"expired":true,"expires_at":"2026-11-22T01:24:22Z","digest_convention":"go","path_order":"utf8"}`
	if string(got) != want {
		t.Errorf("expired:\n got %s\nwant %s", got, want)
	}

	in = sampleInput(t)
	in.RevocationJSON = readFixture(t, "vectors", "revocation.example.com.json")
	r, _ = VerifyOffline(t.Context(), in)
	got, _ = json.Marshal(r)
	want = `{"valid":false,"domain":"example.com","error_code":"key_revoked","error_message":"key ` + testKeyFP + ` is revoked: key_compromise"}`
	if string(got) != want {
		t.Errorf("failure:\n got %s\nwant %s", got, want)
	}
	var v *errdefs.VerificationError
	if !errors.As(r.Err(), &v) || v.Fingerprint != testKeyFP || v.Reason != errdefs.ReasonKeyRevoked {
		t.Errorf("Err() = %#v", r.Err())
	}
}

// TestVerifyWrongKeys: no vector verifies with the unrelated key
// (TestConformanceWrongKey: nor a real-world signature with the test key).
func TestVerifyWrongKeys(t *testing.T) {
	other := readFixture(t, "vectors", "keys", "other_pub.pem")
	dirs := []string{"sample-skill-go-signed", "sample-skill-python-signed", "sample-skill-js-signed", "sample-skill-rust-emulated-signed"}
	sort.Strings(dirs)
	for _, d := range dirs {
		r, _ := VerifyOffline(t.Context(), VerifyInput{Dir: copyFixtureDir(t, "vectors", d), PublicKeyPEM: other})
		if r.Valid {
			t.Errorf("%s verifies with other_pub.pem", d)
		}
	}
}
