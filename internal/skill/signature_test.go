package skill

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/signerd/signerd/internal/errdefs"
)

// goSignedVectors are the documents the official Go SDK wrote (spec §14.2).
var goSignedVectors = []string{
	"sample-skill-go-signed",
	"sample-skill-go-v14-signed",
	"sample-skill-go-expired-signed",
}

// TestBuildReproducesUpstreamBytes rebuilds each Go-SDK-written document
// from its inputs (with the DER signature taken from the document, since
// ECDSA is randomized) and requires the very same bytes: field order,
// optional fields, version bump, indentation and trailing newline.
func TestBuildReproducesUpstreamBytes(t *testing.T) {
	pub, err := ParsePublicKeyPEM(readFixture(t, "vectors", "keys", "pub.pem"))
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range append(goSignedVectors, "sample-skill-python-signed", "sample-skill-js-signed") {
		t.Run(name, func(t *testing.T) {
			raw := readFixture(t, "vectors", name, SignatureFilename)
			sig, err := ParseSignature(raw)
			if err != nil {
				t.Fatal(err)
			}
			m, err := Canonicalize(t.Context(), copyFixtureDir(t, "vectors", name))
			if err != nil {
				t.Fatal(err)
			}
			der, err := base64.StdEncoding.DecodeString(sig.Signature)
			if err != nil {
				t.Fatal(err)
			}
			signedAt, _ := time.Parse(time.RFC3339, sig.SignedAt)
			var expiresIn time.Duration
			if sig.ExpiresAt != "" {
				e, _ := time.Parse(time.RFC3339, sig.ExpiresAt)
				expiresIn = e.Sub(signedAt)
			}
			conv := DigestGo
			if strings.Contains(name, "python") || strings.Contains(name, "js") {
				conv = DigestSHA256
			}
			in := SignatureInput{
				Root:      m.Root,
				Manifest:  m.Files,
				Domain:    sig.Domain,
				SkillName: ParseSkillName(fixture(t, "vectors", name)),
				SignedAt:  signedAt.Add(300 * time.Millisecond), // truncated to the second
				Options: SignOptions{
					ExpiresIn:        expiresIn,
					SchemaVersion:    sig.SchemaVersion,
					PreviousHash:     sig.PreviousHash,
					Canonicalization: sig.Canonicalization,
				},
				SignatureDER: der,
				PublicKey:    pub,
				Convention:   conv,
			}
			if !strings.HasPrefix(sig.SignerKid, "sha256:") {
				in.SignerKid = sig.SignerKid // else derived from PublicKey
			}
			got, err := BuildSignatureDocument(in)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, raw) {
				t.Errorf("built document differs from upstream's:\n got %s\nwant %s", got, raw)
			}
			// And re-encoding what we parsed is byte-identical too.
			if re, _ := sig.Encode(); !bytes.Equal(re, raw) {
				t.Errorf("re-encoded document differs:\n%s", re)
			}
		})
	}
}

func TestBuildSignatureVersionAndValidation(t *testing.T) {
	priv, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	m, err := Canonicalize(t.Context(), copyFixtureDir(t, "vectors", "sample-skill-go-signed"))
	if err != nil {
		t.Fatal(err)
	}
	d, _ := SigningDigest(m.Root, DigestSHA256)
	der, _ := ecdsa.SignASN1(rand.Reader, priv, d)
	base := func() SignatureInput {
		return SignatureInput{Root: m.Root, Manifest: m.Files, Domain: "example.com", SkillName: "s",
			SignedAt: time.Date(2026, 1, 2, 3, 4, 5, 6, time.FixedZone("X", 3600)), SignatureDER: der, PublicKey: &priv.PublicKey}
	}
	prev := m.SkillHash()
	versions := []struct {
		name string
		opt  SignOptions
		want string
	}{
		{"none", SignOptions{}, "1.3"},
		{"expires", SignOptions{ExpiresIn: time.Hour}, "1.4"},
		{"schema_version", SignOptions{SchemaVersion: "1.0.0"}, "1.4"},
		{"previous_hash", SignOptions{PreviousHash: prev}, "1.4"},
		{"canonicalization", SignOptions{Canonicalization: CanonicalizationV1}, "1.4"},
	}
	for _, v := range versions {
		in := base()
		in.Options = v.opt
		s, err := BuildSignature(in)
		if err != nil {
			t.Fatalf("%s: %v", v.name, err)
		}
		if s.SchemapinVersion != v.want {
			t.Errorf("%s: schemapin_version %s, want %s", v.name, s.SchemapinVersion, v.want)
		}
		if s.SignedAt != "2026-01-02T02:04:05Z" {
			t.Errorf("signed_at %s", s.SignedAt)
		}
		if v.opt.ExpiresIn > 0 && s.ExpiresAt != "2026-01-02T03:04:05Z" {
			t.Errorf("expires_at %s", s.ExpiresAt)
		}
		if fp, _ := Fingerprint(&priv.PublicKey); s.SignerKid != fp {
			t.Errorf("signer_kid %s, want fingerprint", s.SignerKid)
		}
	}

	other, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	bad := map[string]func(*SignatureInput){
		"root mismatch":       func(in *SignatureInput) { in.Root[0] ^= 1 },
		"empty manifest":      func(in *SignatureInput) { in.Manifest = nil },
		"no domain":           func(in *SignatureInput) { in.Domain = " " },
		"no name":             func(in *SignatureInput) { in.SkillName = "" },
		"no time":             func(in *SignatureInput) { in.SignedAt = time.Time{} },
		"negative expiry":     func(in *SignatureInput) { in.Options.ExpiresIn = -time.Second },
		"bad previous":        func(in *SignatureInput) { in.Options.PreviousHash = "abc" },
		"bad canon":           func(in *SignatureInput) { in.Options.Canonicalization = "v2" },
		"garbage DER":         func(in *SignatureInput) { in.SignatureDER = []byte{1, 2, 3} },
		"trailing DER":        func(in *SignatureInput) { in.SignatureDER = append(bytes.Clone(der), 0) },
		"wrong key":           func(in *SignatureInput) { in.PublicKey = &other.PublicKey },
		"wrong convention":    func(in *SignatureInput) { in.Convention = DigestGo },
		"no kid without key":  func(in *SignatureInput) { in.PublicKey = nil },
		"unknown convention":  func(in *SignatureInput) { in.Convention = "md5" },
		"uppercase manifest":  func(in *SignatureInput) { in.Manifest = map[string]string{"a": strings.ToUpper(m.SkillHash())} },
		"manifest not string": func(in *SignatureInput) { in.Manifest = map[string]string{"a": "x"} },
	}
	for name, mut := range bad {
		in := base()
		mut(&in)
		if _, err := BuildSignature(in); !errors.Is(err, errdefs.ErrInvalidArgument) && !errors.Is(err, ErrSignatureMismatch) && !errors.Is(err, ErrSignatureEncoding) {
			t.Errorf("%s: err = %v", name, err)
		}
	}
	// Without a public key, a kid is enough and nothing is verified.
	in := base()
	in.PublicKey, in.SignerKid = nil, "kid-1"
	if s, err := BuildSignature(in); err != nil || s.SignerKid != "kid-1" {
		t.Errorf("kid without key: %v", err)
	}
}

func TestSigningDigest(t *testing.T) {
	var root [32]byte
	copy(root[:], "0123456789abcdef0123456789abcdef")
	s, _ := SigningDigest(root, DigestSHA256)
	if want := sha256.Sum256(root[:]); !bytes.Equal(s, want[:]) {
		t.Error("sha256 convention is not SHA-256(root)")
	}
	if d, _ := SigningDigest(root, ""); !bytes.Equal(d, s) {
		t.Error("default convention is not sha256")
	}
	g, _ := SigningDigest(root, DigestGo)
	if !bytes.Equal(g, root[:]) {
		t.Error("go convention is not the root")
	}
	g[0] ^= 1
	if root[0] != '0' {
		t.Error("SigningDigest aliases the root")
	}
	if _, err := SigningDigest(root, DigestAny); !errors.Is(err, errdefs.ErrInvalidArgument) {
		t.Error("any is not a signing convention")
	}
	for in, want := range map[string]DigestConvention{"": DigestAny, "ANY": DigestAny, " go ": DigestGo, "sha256": DigestSHA256} {
		if got, err := ParseDigestConvention(in); err != nil || got != want {
			t.Errorf("ParseDigestConvention(%q) = %q, %v", in, got, err)
		}
	}
	if _, err := ParseDigestConvention("sha512"); err == nil {
		t.Error("sha512 accepted")
	}
}

func TestParseSignatureLenient(t *testing.T) {
	s, err := ParseSignature([]byte(`{"Skill_Name":"x","extra":{"a":[1]},"signature":"AA==","file_manifest":{"a":"b"}}`))
	if err != nil {
		t.Fatal(err)
	}
	if s.SkillName != "x" || s.FileManifest["a"] != "b" {
		t.Errorf("%+v", s)
	}
	for _, bad := range []string{``, `null`, `[]`, `"x"`, `{`, `{"file_manifest":[]}`, `{"skill_name":1}`, `{} x`} {
		if _, err := ParseSignature([]byte(bad)); !errors.Is(err, errdefs.ErrInvalidArgument) {
			t.Errorf("%q: err = %v", bad, err)
		}
	}
	if _, err := LoadSignature(t.TempDir()); !errors.Is(err, errdefs.ErrNotFound) {
		t.Errorf("missing: %v", err)
	}
}

func TestWriteSignatureFile(t *testing.T) {
	dir := t.TempDir()
	doc := []byte("{}\n")
	if err := WriteSignatureFile(dir, doc); err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(filepath.Join(dir, SignatureFilename))
	if err != nil || st.Mode().Perm() != 0o644 { // public, like a .sig
		t.Errorf("mode %v, %v", st.Mode(), err)
	}
	ents, _ := os.ReadDir(dir)
	if len(ents) != 1 {
		t.Errorf("temporary files left: %v", ents)
	}
}

// TestRoundTripWithOpenSSL signs a generated skill with a fresh key in
// each convention through the builder, then verifies with our verifier
// (default: either convention, reporting which; and each required
// convention) and independently with openssl.
func TestRoundTripWithOpenSSL(t *testing.T) {
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	pubPEM, err := EncodePublicKeyPEM(&priv.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	openssl, err := exec.LookPath("openssl")
	if err != nil {
		t.Fatalf("openssl not found (%v): `make deps` installs it; it is the independent check of the fingerprint and the signatures", err)
	}
	work := t.TempDir()
	pubFile := filepath.Join(work, "pub.pem")
	if err := os.WriteFile(pubFile, pubPEM, 0o644); err != nil {
		t.Fatal(err)
	}
	// The openssl fingerprint recipe of spec §2 must agree with ours.
	fp, _ := Fingerprint(&priv.PublicKey)
	der, err := exec.Command(openssl, "pkey", "-pubin", "-in", pubFile, "-outform", "DER").Output()
	if err != nil {
		t.Fatal(err)
	}
	if sum := sha256.Sum256(der); "sha256:"+hex.EncodeToString(sum[:]) != fp {
		t.Errorf("fingerprint %s disagrees with openssl", fp)
	}

	for _, conv := range []DigestConvention{DigestSHA256, DigestGo} {
		t.Run(string(conv), func(t *testing.T) {
			dir := writeTree(t, map[string]string{
				"SKILL.md":         "---\nname: round-trip\n---\nbody\n",
				"scripts/a.sh":     "echo a\n",
				".config/x.json":   "{}",
				"empty":            "",
				"nested/deep/b.md": strings.Repeat("b", 300000),
			})
			m, err := Canonicalize(t.Context(), dir)
			if err != nil {
				t.Fatal(err)
			}
			digest, err := SigningDigest(m.Root, conv)
			if err != nil {
				t.Fatal(err)
			}
			der, err := ecdsa.SignASN1(rand.Reader, priv, digest)
			if err != nil {
				t.Fatal(err)
			}
			doc, err := BuildSignatureDocument(SignatureInput{
				Root: m.Root, Manifest: m.Files, Domain: "example.org", SkillName: ParseSkillName(dir),
				SignedAt: time.Now(), Options: SignOptions{ExpiresIn: 24 * time.Hour, SchemaVersion: "1.0.0"},
				SignatureDER: der, PublicKey: &priv.PublicKey, Convention: conv,
			})
			if err != nil {
				t.Fatal(err)
			}
			if err := WriteSignatureFile(dir, doc); err != nil {
				t.Fatal(err)
			}

			for _, want := range []DigestConvention{DigestAny, conv} {
				r, err := VerifyOffline(t.Context(), VerifyInput{Dir: dir, PublicKeyPEM: pubPEM, Domain: "example.org", Options: VerifyOptions{Digest: want}})
				if err != nil {
					t.Fatal(err)
				}
				if !r.Valid || r.DigestConvention != conv || len(r.Warnings) != 0 || r.Err() != nil {
					t.Errorf("verify (%s): %+v", want, r)
				}
			}
			other := DigestGo
			if conv == DigestGo {
				other = DigestSHA256
			}
			r, _ := VerifyOffline(t.Context(), VerifyInput{Dir: dir, PublicKeyPEM: pubPEM, Options: VerifyOptions{Digest: other}})
			if r.Valid || r.ErrorCode != CodeSignatureInvalid || !strings.Contains(r.ErrorMessage, string(other)+" is required") {
				t.Errorf("requiring %s accepted a %s signature: %+v", other, conv, r)
			}

			rootFile := filepath.Join(work, string(conv)+".root.bin")
			sigFile := filepath.Join(work, string(conv)+".sig.der")
			os.WriteFile(rootFile, m.Root[:], 0o644)
			os.WriteFile(sigFile, der, 0o644)
			dgst := exec.Command(openssl, "dgst", "-sha256", "-verify", pubFile, "-signature", sigFile, rootFile)
			pkeyutl := exec.Command(openssl, "pkeyutl", "-verify", "-pubin", "-inkey", pubFile, "-in", rootFile, "-sigfile", sigFile)
			ok, wrong := dgst, pkeyutl
			if conv == DigestGo {
				ok, wrong = pkeyutl, dgst
			}
			if out, err := ok.CombinedOutput(); err != nil {
				t.Errorf("openssl rejects our %s signature: %v\n%s", conv, err, out)
			}
			if out, err := wrong.CombinedOutput(); err == nil {
				t.Errorf("openssl accepts our %s signature under the other convention:\n%s", conv, out)
			}
		})
	}
}
