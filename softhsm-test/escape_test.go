package softhsmtest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/signerd/signerd/internal/skill"
)

// terminalControls are bytes and runes a terminal acts on; none may reach
// it from a document or the daemon through signctl's text output.
var terminalControls = []string{"\x1b", "\r", "\x9b", "\u009b", "\u202e", "\x07"}

func assertNoControls(t *testing.T, what, out string) {
	t.Helper()
	for _, c := range terminalControls {
		if strings.Contains(out, c) {
			t.Fatalf("%s prints %q raw:\n%q", what, c, out)
		}
	}
}

// TestTextOutputEscapesDocumentStrings: strings from a crafted
// .schemapin.sig (canonicalization, skill_name, domain) that hold terminal
// escape sequences are printed escaped, offline and through the daemon, in
// failures and in success; a forged "OK" cannot appear in colour.
func TestTextOutputEscapesDocumentStrings(t *testing.T) {
	d := startDaemon(t)
	work := t.TempDir()
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, _ := x509.MarshalPKCS8PrivateKey(priv)
	privFile := writeFile(t, work, "k.pem", pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}))
	spki, _ := x509.MarshalPKIXPublicKey(&priv.PublicKey)
	pub := writeFile(t, work, "k.pub.pem", pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: spki}))
	fpSum := sha256.Sum256(spki)
	mustSignctl(t, d, "key", "import", "k", "--algorithm", "ecdsa-p256", "--private-key", privFile, "--org", "example.com")

	dir := filepath.Join(work, "skill")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	writeFile(t, dir, "SKILL.md", []byte("---\nname: s\n---\n"))
	m, err := skill.Canonicalize(t.Context(), dir)
	if err != nil {
		t.Fatal(err)
	}
	digest := sha256.Sum256(m.Root[:])
	sig, err := ecdsa.SignASN1(rand.Reader, priv, digest[:])
	if err != nil {
		t.Fatal(err)
	}
	forged := "\x1b[2K\r\x1b[32mOK: verified\x1b[0m \u202e\u009b"
	write := func(fields map[string]any) {
		doc := map[string]any{
			"schemapin_version": "1.3", "skill_name": "s", "skill_hash": m.SkillHash(),
			"signature": base64.StdEncoding.EncodeToString(sig), "signed_at": time.Now().UTC().Format(time.RFC3339),
			"domain": "example.com", "signer_kid": "sha256:" + hex.EncodeToString(fpSum[:]), "file_manifest": m.Files,
		}
		for k, v := range fields {
			doc[k] = v
		}
		b, _ := json.Marshal(doc)
		writeFile(t, dir, skill.SignatureFilename, b)
	}
	verify := func(args ...string) result {
		return signctl(t, d, append([]string{"skill", "verify", dir, "--domain", "example.com"}, args...)...)
	}
	offline, online := []string{"--public-key", pub}, []string{"--online"}

	tests := []struct {
		name   string
		fields map[string]any
		args   []string
		code   int
	}{
		{"canonicalization offline", map[string]any{"canonicalization": forged}, offline, 1},
		{"canonicalization online", map[string]any{"canonicalization": forged}, online, 2}, // online: MALFORMED_SIGNATURE is exit 2
		{"domain claim offline", map[string]any{"domain": forged}, offline, 1},
		{"skill_name in the pin line", map[string]any{"skill_name": forged}, append(offline, "--pin-store", filepath.Join(work, "pins.json")), 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			write(tt.fields)
			r := verify(tt.args...)
			if r.code != tt.code {
				t.Fatalf("exit %d, want %d\n%s%s", r.code, tt.code, r.stdout, r.stderr)
			}
			assertNoControls(t, "skill verify", r.stdout+r.stderr)
			if !strings.Contains(r.stdout+r.stderr, `\x1b[32mOK: verified\x1b[0m \u202e`) {
				t.Fatalf("the forged text is not shown escaped:\n%s%s", r.stdout, r.stderr)
			}
		})
	}
}
