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
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"
	"unicode/utf16"

	"github.com/signerd/signerd/internal/skill"
)

// TestSkillFileNamesSlideIntoContent: SchemaPin hashes SHA-256(path ||
// content), so "run.sh" holding "echo …" hashes as "run.s" holding
// "hecho …" and the signature still verifies the renamed folder. signctl
// refuses it offline and online, naming the files; online the daemon's
// record catches it even when the document's manifest was edited to match.
func TestSkillFileNamesSlideIntoContent(t *testing.T) {
	d := startDaemon(t)
	work := t.TempDir()
	mustSignctl(t, d, "key", "create", "skills", "--algorithm", "ecdsa-p256", "--org", "example.com")
	pub := writeFile(t, work, "skills.pub.pem", []byte(mustSignctl(t, d, "key", "public", "skills").stdout))
	dir := filepath.Join(work, "tool")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	writeFile(t, dir, "SKILL.md", []byte("---\nname: tool\n---\n"))
	writeFile(t, dir, "run.sh", []byte("echo safe\n"))
	mustSignctl(t, d, "skill", "sign", dir, "--key", "skills", "--domain", "example.com")
	offline := []string{"--public-key", pub}
	online := []string{"--online"}
	for _, mode := range [][]string{offline, online} {
		mustSignctl(t, d, append([]string{"skill", "verify", dir, "--domain", "example.com"}, mode...)...)
	}

	if err := os.Remove(filepath.Join(dir, "run.sh")); err != nil {
		t.Fatal(err)
	}
	writeFile(t, dir, "run.s", []byte("hecho safe\n"))
	for _, mode := range [][]string{offline, online} {
		r := signctl(t, d, append([]string{"skill", "verify", dir, "--domain", "example.com", "-o", "json"}, mode...)...)
		out := r.json(t)
		tampered, _ := out["tampered"].(map[string]any)
		if r.code != 1 || out["reason"] != "PACKAGE_TAMPERED" || out["valid"] != false ||
			fmt.Sprint(tampered["added"]) != "[run.s]" || fmt.Sprint(tampered["removed"]) != "[run.sh]" {
			t.Fatalf("renamed folder %v: exit %d\n%s%s", mode, r.code, r.stdout, r.stderr)
		}
		r = signctl(t, d, append([]string{"skill", "verify", dir, "--domain", "example.com"}, mode...)...)
		if r.code != 1 || !strings.Contains(r.stderr, "run.sh") || !strings.Contains(r.stderr, "run.s\n") {
			t.Fatalf("text output %v does not name the files: exit %d\n%s", mode, r.code, r.stderr)
		}
	}

	// The document's manifest is not signed: edited to the new names it
	// fools an offline verifier, never the daemon, which kept its own.
	sigPath := filepath.Join(dir, skill.SignatureFilename)
	var doc map[string]any
	raw, _ := os.ReadFile(sigPath)
	if err := json.Unmarshal(raw, &doc); err != nil {
		t.Fatal(err)
	}
	manifest := doc["file_manifest"].(map[string]any)
	manifest["run.s"] = manifest["run.sh"]
	delete(manifest, "run.sh")
	edited, _ := json.MarshalIndent(doc, "", "  ")
	writeFile(t, dir, skill.SignatureFilename, edited)
	r := signctl(t, d, "skill", "verify", dir, "--domain", "example.com", "--online", "-o", "json")
	if r.code != 1 || r.json(t)["reason"] != "PACKAGE_TAMPERED" || !strings.Contains(fmt.Sprint(r.json(t)["error_message"]), "record") {
		t.Fatalf("online, manifest edited to match: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
}

// jsSkillRoot is the JavaScript SDK's canonical root: the manifest's keys
// sorted as Array.prototype.sort sorts them (UTF-16 code units).
func jsSkillRoot(files map[string]string) [32]byte {
	keys := make([]string, 0, len(files))
	for k := range files {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		return slices.Compare(utf16.Encode([]rune(keys[i])), utf16.Encode([]rune(keys[j]))) < 0
	})
	var hexes strings.Builder
	for _, k := range keys {
		hexes.WriteString(strings.TrimPrefix(files[k], "sha256:"))
	}
	return sha256.Sum256([]byte(hexes.String()))
}

// TestSkillSignedByJavaScriptSDK: a folder holding an emoji name and a
// U+E000–U+FFFF name, signed in the JavaScript SDK's path order, verifies
// offline and online and says which order matched.
func TestSkillSignedByJavaScriptSDK(t *testing.T) {
	d := startDaemon(t)
	work := t.TempDir()
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, _ := x509.MarshalPKCS8PrivateKey(priv)
	privFile := writeFile(t, work, "js.key.pem", pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}))
	spki, _ := x509.MarshalPKIXPublicKey(&priv.PublicKey)
	pub := writeFile(t, work, "js.pub.pem", pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: spki}))
	fpSum := sha256.Sum256(spki)
	fp := "sha256:" + hex.EncodeToString(fpSum[:])

	dir := filepath.Join(work, "js-skill")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	writeFile(t, dir, "SKILL.md", []byte("---\nname: js-skill\n---\n"))
	writeFile(t, dir, "😀.md", []byte("smile\n"))
	writeFile(t, dir, "ｆｕｌｌ.md", []byte("full width\n"))
	m, err := skill.Canonicalize(t.Context(), dir)
	if err != nil {
		t.Fatal(err)
	}
	root := jsSkillRoot(m.Files)
	if root == m.Root {
		t.Fatal("the JavaScript order gives the same root here: the test would prove nothing")
	}
	digest := sha256.Sum256(root[:])
	sig, err := ecdsa.SignASN1(rand.Reader, priv, digest[:])
	if err != nil {
		t.Fatal(err)
	}
	doc, _ := json.MarshalIndent(map[string]any{
		"schemapin_version": "1.3", "skill_name": "js-skill", "skill_hash": "sha256:" + hex.EncodeToString(root[:]),
		"signature": base64.StdEncoding.EncodeToString(sig), "signed_at": time.Now().UTC().Format(time.RFC3339),
		"domain": "example.com", "signer_kid": fp, "file_manifest": m.Files,
	}, "", "  ")
	writeFile(t, dir, skill.SignatureFilename, doc)

	mustSignctl(t, d, "key", "import", "js", "--algorithm", "ecdsa-p256", "--private-key", privFile, "--org", "example.com")
	for _, mode := range [][]string{{"--public-key", pub}, {"--online"}} {
		r := signctl(t, d, append([]string{"skill", "verify", dir, "--domain", "example.com", "-o", "json"}, mode...)...)
		if r.code != 0 || r.json(t)["valid"] != true || r.json(t)["path_order"] != "utf16" {
			t.Fatalf("verify %v: exit %d\n%s%s", mode, r.code, r.stdout, r.stderr)
		}
		r = mustSignctl(t, d, append([]string{"skill", "verify", dir, "--domain", "example.com"}, mode...)...)
		if !strings.Contains(r.stdout, "UTF-16") || !strings.Contains(r.stdout, "JavaScript") {
			t.Fatalf("text output %v does not say which order matched:\n%s", mode, r.stdout)
		}
	}
	// Altered, it fails in either order.
	writeFile(t, dir, "ｆｕｌｌ.md", []byte("full width, changed\n"))
	for _, mode := range [][]string{{"--public-key", pub}, {"--online"}} {
		if r := signctl(t, d, append([]string{"skill", "verify", dir, "--domain", "example.com", "-o", "json"}, mode...)...); r.code != 1 {
			t.Fatalf("altered %v: exit %d\n%s", mode, r.code, r.stdout)
		}
	}
}

// TestSkillManyFilesOnline: online verification sends the folder's
// manifest beside the document that holds the signed one; a skill of
// 1,500 files (a 160 KiB .schemapin.sig) still fits the request limit.
func TestSkillManyFilesOnline(t *testing.T) {
	d := startDaemon(t)
	mustSignctl(t, d, "key", "create", "skills", "--algorithm", "ecdsa-p256", "--org", "example.com")
	dir := filepath.Join(t.TempDir(), "big")
	if err := os.MkdirAll(filepath.Join(dir, "files"), 0o755); err != nil {
		t.Fatal(err)
	}
	writeFile(t, dir, "SKILL.md", []byte("---\nname: big\n---\n"))
	for i := range 1500 {
		writeFile(t, filepath.Join(dir, "files"), fmt.Sprintf("file-%04d.txt", i), []byte(fmt.Sprint(i)))
	}
	mustSignctl(t, d, "skill", "sign", dir, "--key", "skills", "--domain", "example.com")
	if st, err := os.Stat(filepath.Join(dir, skill.SignatureFilename)); err != nil || st.Size() < 128<<10 {
		t.Fatalf("the document is not as large as the test needs: %v %v", st, err)
	}
	r := mustSignctl(t, d, "skill", "verify", dir, "--domain", "example.com", "--online", "-o", "json")
	if r.json(t)["valid"] != true {
		t.Fatalf("verify --online: %s", r.stdout)
	}
}
