package pkgsig

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/hex"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/signerd/signerd/internal/errdefs"
)

// Copied from shared/fixtures/cloacina (testdata/cloacina/README.md).
const fixtures = "testdata/cloacina"

func readFixture(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(fixtures, name))
	if err != nil {
		t.Fatalf("fixture %s: %v", name, err)
	}
	return b
}

func fixtureDigest(t *testing.T, name string) [DigestSize]byte {
	t.Helper()
	d, err := HashFile(context.Background(), filepath.Join(fixtures, name))
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func TestFixtures(t *testing.T) {
	release, err := ParsePublicKeyPEM(readFixture(t, "release.pub.pem"))
	if err != nil {
		t.Fatal(err)
	}
	other, err := ParsePublicKeyPEM(readFixture(t, "other.pub.pem"))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		pkg     string
		sig     string
		key     ed25519.PublicKey
		wantErr error
	}{
		{"signed package verifies", "libworkflow.so", "libworkflow.so.sig", release, nil},
		{"tampered package", "libworkflow_tampered.so", "libworkflow.so.sig", release, errdefs.ErrPackageTampered},
		{"signed by another key", "libworkflow.so", "libworkflow.so.other-key.sig", release, errdefs.ErrUntrustedSigner},
		{"other key's signature with its own key", "libworkflow.so", "libworkflow.so.other-key.sig", other, nil},
		{"bad signature bytes", "libworkflow.so", "libworkflow.so.bad-signature.sig", release, errdefs.ErrInvalidSignature},
		{"malformed document", "libworkflow.so", "malformed.sig", release, errdefs.ErrMalformedSignature},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sig, err := Parse(readFixture(t, tt.sig))
			if err == nil {
				err = Check(fixtureDigest(t, tt.pkg), sig, tt.key)
			}
			if !errors.Is(err, tt.wantErr) && !(tt.wantErr == nil && err == nil) {
				t.Fatalf("got %v, want %v", err, tt.wantErr)
			}
			if tt.wantErr == nil && err != nil {
				t.Fatalf("unexpected error %v", err)
			}
		})
	}
}

func TestEncodeMatchesCloacinaBytes(t *testing.T) {
	seed := readFixture(t, "release.seed.bin")
	priv := ed25519.NewKeyFromSeed(seed)
	digest := fixtureDigest(t, "libworkflow.so")
	sig := ed25519.Sign(priv, digest[:])
	signedAt := time.Date(2026, 1, 28, 12, 0, 0, 0, time.UTC)
	doc := NewDocument(digest, priv.Public().(ed25519.PublicKey), sig, signedAt)
	got := doc.Encode()
	want := readFixture(t, "libworkflow.so.sig")
	if !bytes.Equal(got, want) {
		t.Fatalf("encoded document differs from Cloacina's:\n got %q\nwant %q", got, want)
	}
}

func TestFormatSignedAt(t *testing.T) {
	tests := []struct {
		ns   int
		want string
	}{
		{0, "2026-01-28T12:34:56+00:00"},
		{123_000_000, "2026-01-28T12:34:56.123+00:00"},
		{123_456_000, "2026-01-28T12:34:56.123456+00:00"},
		{123_456_789, "2026-01-28T12:34:56.123456789+00:00"},
		{1, "2026-01-28T12:34:56.000000001+00:00"},
	}
	for _, tt := range tests {
		loc := time.FixedZone("x", 3600)
		at := time.Date(2026, 1, 28, 13, 34, 56, tt.ns, loc)
		if got := FormatSignedAt(at); got != tt.want {
			t.Errorf("FormatSignedAt(ns=%d) = %q, want %q", tt.ns, got, tt.want)
		}
	}
}

func TestParseRejects(t *testing.T) {
	good := string(readFixture(t, "libworkflow.so.sig"))
	tests := []struct {
		name string
		doc  string
	}{
		{"empty", ""},
		{"whitespace", " \n"},
		{"not json", "{ invalid json }"},
		{"truncated", good[:len(good)/2]},
		{"array", "[]"},
		{"trailing data", good + "{}"},
		{"wrong version", strings.Replace(good, `"version": 1`, `"version": 2`, 1)},
		{"missing version", strings.Replace(good, `"version": 1,`, ``, 1)},
		{"wrong algorithm", strings.Replace(good, `"ed25519"`, `"ecdsa"`, 1)},
		{"uppercase hash", strings.Replace(good, "59ff55de", "59FF55DE", 1)},
		{"short hash", strings.Replace(good, "59ff55de", "59ff", 1)},
		{"bad fingerprint", strings.Replace(good, "3097e2de", "zz97e2de", 1)},
		{"non-base64 signature", strings.Replace(good, "7vVRfXev", "7vVR!Xev", 1)},
		{"short signature", strings.Replace(good, "7vVRfXevOMGoYqNxzmzUxqG96vTsdKo7f5nuVOAvvPVY2D1HtpQlFmHHzxbyuzBSvJ1/04zegWneorAZRg2hCg==", "7vVRfXev", 1)},
		{"unpadded base64", strings.Replace(good, "Cg==", "Cg", 1)},
		{"hash as number", strings.Replace(good, `"59ff55de6857b718c180deb034d529996084be9556ca645e4e1de2129aa7e556"`, `5`, 1)},
		{"huge", `{"x":"` + strings.Repeat("a", MaxDocumentSize) + `"}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse([]byte(tt.doc))
			if !errors.Is(err, errdefs.ErrMalformedSignature) {
				t.Fatalf("Parse = %v, want MALFORMED_SIGNATURE", err)
			}
		})
	}
}

func TestParseLenient(t *testing.T) {
	good := readFixture(t, "libworkflow.so.sig")
	for name, doc := range map[string][]byte{
		"trailing newline": append(append([]byte{}, good...), '\n'),
		"CRLF":             bytes.ReplaceAll(good, []byte("\n"), []byte("\r\n")),
		"unknown field":    bytes.Replace(good, []byte(`"version": 1,`), []byte(`"version": 1, "comment": "x",`), 1),
	} {
		t.Run(name, func(t *testing.T) {
			if _, err := Parse(doc); err != nil {
				t.Fatalf("Parse: %v", err)
			}
		})
	}
}

func TestPublicKeyPEM(t *testing.T) {
	raw := readFixture(t, "release.pub.bin")
	for _, name := range []string{"release.pub.pem", "release.pub.lf.pem"} {
		pub, err := ParsePublicKeyPEM(readFixture(t, name))
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if !bytes.Equal(pub, raw) {
			t.Fatalf("%s: key mismatch", name)
		}
	}
	if got, want := Fingerprint(raw), "3097e2dee2cb4a34b53840cdb705aed71067c36f68db0e0f559c3f3fa043315f"; got != want {
		t.Fatalf("Fingerprint = %s, want %s", got, want)
	}
	if got := EncodePublicKeyPEM(raw); !bytes.Equal(got, readFixture(t, "release.pub.lf.pem")) {
		t.Fatalf("EncodePublicKeyPEM = %q", got)
	}

	ecPEM := "-----BEGIN PUBLIC KEY-----\nMFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEDuGsu38FPTfdVOcqUuzNhZXdgcRjyMwpypHNzyI3OCd1JrhOHrv6q4/b8ETJzRSADtDwY0jqMw1cugaqB5oH2A==\n-----END PUBLIC KEY-----\n"
	bad := map[string]string{
		"empty":        "",
		"not pem":      "hello",
		"private key":  strings.ReplaceAll(string(readFixture(t, "release.pub.lf.pem")), "PUBLIC KEY", "PRIVATE KEY"),
		"ecdsa key":    ecPEM,
		"garbage der":  "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n",
		"trailing pem": string(readFixture(t, "release.pub.lf.pem")) + "junk",
	}
	for name, in := range bad {
		t.Run(name, func(t *testing.T) {
			if _, err := ParsePublicKeyPEM([]byte(in)); !errors.Is(err, errdefs.ErrInvalidArgument) {
				t.Fatalf("got %v, want ErrInvalidArgument", err)
			}
		})
	}
}

func TestHashFile(t *testing.T) {
	ctx := context.Background()
	d := fixtureDigest(t, "libworkflow.so")
	if got := hex.EncodeToString(d[:]); got != "59ff55de6857b718c180deb034d529996084be9556ca645e4e1de2129aa7e556" {
		t.Fatalf("digest %s", got)
	}
	if _, err := HashFile(ctx, t.TempDir()); !errors.Is(err, errdefs.ErrInvalidArgument) {
		t.Fatalf("directory: %v", err)
	}
	if _, err := HashFile(ctx, filepath.Join(t.TempDir(), "missing")); !errors.Is(err, errdefs.ErrInvalidArgument) {
		t.Fatalf("missing: %v", err)
	}
	empty := filepath.Join(t.TempDir(), "empty")
	os.WriteFile(empty, nil, 0o600)
	d, err := HashFile(ctx, empty)
	if err != nil || hex.EncodeToString(d[:]) != "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855" {
		t.Fatalf("empty: %x %v", d, err)
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := HashFile(cctx, empty); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled: %v", err)
	}
}

// TestOpenSSLAcceptsSignature checks our documents against an independent
// Ed25519 implementation: openssl pkeyutl -rawin over the 32 digest bytes.
func TestOpenSSLAcceptsSignature(t *testing.T) {
	if _, err := exec.LookPath("openssl"); err != nil {
		t.Fatal("openssl is required for this test")
	}
	dir := t.TempDir()
	_, priv, _ := ed25519.GenerateKey(nil)
	pub := priv.Public().(ed25519.PublicKey)
	digest, _ := HashReader(context.Background(), strings.NewReader("any package bytes"))
	doc := NewDocument(digest, pub, ed25519.Sign(priv, digest[:]), time.Now())
	parsed, err := Parse(doc.Encode())
	if err != nil {
		t.Fatal(err)
	}
	write := func(name string, b []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	pubPath := write("pub.pem", EncodePublicKeyPEM(pub))
	msg := write("digest.bin", digest[:])
	sig := write("sig.bin", parsed.Sig)
	out, err := exec.Command("openssl", "pkeyutl", "-verify", "-pubin", "-inkey", pubPath, "-rawin", "-in", msg, "-sigfile", sig).CombinedOutput()
	if err != nil {
		t.Fatalf("openssl rejected the signature: %v\n%s", err, out)
	}
	out, err = exec.Command("openssl", "pkey", "-pubin", "-in", pubPath, "-noout").CombinedOutput()
	if err != nil {
		t.Fatalf("openssl pkey rejected our PEM: %v\n%s", err, out)
	}
}

func FuzzParse(f *testing.F) {
	for _, name := range []string{"libworkflow.so.sig", "libworkflow.so.other-key.sig", "libworkflow.so.bad-signature.sig", "malformed.sig"} {
		b, err := os.ReadFile(filepath.Join(fixtures, name))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		sig, err := Parse(data)
		if err != nil {
			if !errors.Is(err, errdefs.ErrMalformedSignature) {
				t.Fatalf("non-malformed error: %v", err)
			}
			return
		}
		if len(sig.Sig) != ed25519.SignatureSize || len(sig.Fingerprint) != 64 {
			t.Fatalf("accepted invalid shape: %+v", sig)
		}
	})
}

func FuzzParsePublicKeyPEM(f *testing.F) {
	for _, name := range []string{"release.pub.pem", "release.pub.lf.pem", "other.pub.pem"} {
		b, _ := os.ReadFile(filepath.Join(fixtures, name))
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		pub, err := ParsePublicKeyPEM(data)
		if err == nil && len(pub) != ed25519.PublicKeySize {
			t.Fatalf("accepted key of %d bytes", len(pub))
		}
	})
}

// TestHashFileFIFO: a FIFO is refused at once, never waited on.
func TestHashFileFIFO(t *testing.T) {
	p := filepath.Join(t.TempDir(), "fifo")
	if err := syscall.Mkfifo(p, 0o600); err != nil {
		t.Skipf("mkfifo: %v", err)
	}
	done := make(chan error, 1)
	go func() { _, err := HashFile(context.Background(), p); done <- err }()
	select {
	case err := <-done:
		if !errors.Is(err, errdefs.ErrInvalidArgument) {
			t.Fatalf("HashFile(fifo) = %v, want ErrInvalidArgument", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("HashFile blocked on a FIFO")
	}
}
