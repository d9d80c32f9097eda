package skill

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"
	"unicode/utf16"

	"github.com/signerd/signerd/internal/errdefs"
)

// canonEdgeManifest is the file manifest of the canon-edge vector (spec
// §14.2), whose root the upstream JavaScript SDK computed as
// canonEdgeJSRoot by sorting paths in UTF-16 code unit order.
var canonEdgeManifest = map[string]string{
	".hidden":                    "sha256:c027ddb45a000a2309a17fa4bcedba3c358581a00a6635efbd2b2ba353ece0b3",
	"B.txt":                      "sha256:dcc062da9baabdaf1290f150e8a43fad09e9050e7a8f47de7c8d01d89511175b",
	"SKILL.md":                   "sha256:bcc5dd3eb4737efaa13f150c502be97b0ca145f95bdb8f52ff91eb407bdaddbd",
	"a-b.txt":                    "sha256:1041c6ff194553e7c78bdb4b8e09ce41c296e389059cbeaa5709a0d7b54e7314",
	"a.txt":                      "sha256:e0cb5fd4c73e984e64f7113a507b9196a0ce75c14913266be1ca341208859bd4",
	"a/b.txt":                    "sha256:c5cbc52f3b9c414e24514529f15a5f08ded7d55dba4c9f7720dfd9b6d7dabc16",
	"bin.dat":                    "sha256:6c2c9f76542b693d6191d1ca40a29f351936d6dc85375475416cfcc4cb48bbc7",
	"crlf.txt":                   "sha256:a378b0f7f66ea76a0e167f818aa055a58779ed8fc65ce2cd6cd88c8dd79518cc",
	"empty.txt":                  "sha256:78907f14915cf120820225aca1b971d11ebb26132387502a7d187e32cf01c641",
	"sub/.schemapin.sig.d/x.txt": "sha256:da8fa7d9790bbb56064db3a060440b338e9f56178f96d13ae3fb440002edb3c0",
	"sub/deep/leaf.txt":          "sha256:0b60df4c97823ce8ebf09a9a4a0b8667f315c2dcb6eaa1ebb6573bcd3735ecdf",
	"é.txt":                      "sha256:7a27f18ace1c7a6482549fbd625e836ec66c77d969cf2e0425d39e075f036b88",
	"Ａ.txt":                      "sha256:a723c99629b2511a6e13e8e0f765ec3abd147dc2f451c9b15dd7aad1ccf3ae24",
	"😀.txt":                      "sha256:68b3ab0697709b29605d7581fe95790bbe6c8b7475562beb98a518bf2c9f22d0",
}

const (
	canonEdgeRoot   = "080cfbff86e6f27d784fd9a9a19fd7a28007170dc33b9b1d806194df925f33a6"
	canonEdgeJSRoot = "5f7402f7db34f361adcee186a2335786fe9f9e9b16ee5b171aa98374da2aec7f"
)

func TestComputeRootUTF16MatchesJavaScriptSDK(t *testing.T) {
	r8, err := ComputeRoot(canonEdgeManifest)
	if err != nil || hex.EncodeToString(r8[:]) != canonEdgeRoot {
		t.Fatalf("UTF-8 root %x %v", r8, err)
	}
	r16, err := ComputeRootUTF16(canonEdgeManifest)
	if err != nil || hex.EncodeToString(r16[:]) != canonEdgeJSRoot {
		t.Fatalf("UTF-16 root %x %v, want the JavaScript SDK's %s", r16, err, canonEdgeJSRoot)
	}
}

// jsRoot is the JavaScript SDK's rule, written here separately: sort the
// manifest keys as Array.prototype.sort does (UTF-16 code units), then hash
// the concatenated hex digests.
func jsRoot(files map[string]string) [32]byte {
	keys := make([]string, 0, len(files))
	for k := range files {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		a, b := utf16.Encode([]rune(keys[i])), utf16.Encode([]rune(keys[j]))
		for n := 0; n < len(a) && n < len(b); n++ {
			if a[n] != b[n] {
				return a[n] < b[n]
			}
		}
		return len(a) < len(b)
	})
	var cat strings.Builder
	for _, k := range keys {
		cat.WriteString(strings.TrimPrefix(files[k], "sha256:"))
	}
	return sha256.Sum256([]byte(cat.String()))
}

// signAs writes <dir>/.schemapin.sig as an SDK would: the signature over
// SHA-256(root) of the given root, skill_hash of that root, and the
// folder's manifest.
func signAs(t *testing.T, dir string, priv *ecdsa.PrivateKey, root [32]byte, files map[string]string) {
	t.Helper()
	digest := sha256.Sum256(root[:])
	der, err := ecdsa.SignASN1(rand.Reader, priv, digest[:])
	if err != nil {
		t.Fatal(err)
	}
	fp, _ := Fingerprint(&priv.PublicKey)
	doc, err := json.MarshalIndent(Signature{
		SchemapinVersion: SchemapinVersion13, SkillName: "s", SkillHash: "sha256:" + hex.EncodeToString(root[:]),
		Signature: base64.StdEncoding.EncodeToString(der), SignedAt: time.Now().UTC().Format(time.RFC3339),
		Domain: "example.com", SignerKid: fp, FileManifest: files,
	}, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, SignatureFilename), doc, 0o644); err != nil {
		t.Fatal(err)
	}
}

func verifyDir(t *testing.T, dir string, priv *ecdsa.PrivateKey) *Result {
	t.Helper()
	pem, err := EncodePublicKeyPEM(&priv.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	res, err := VerifyOffline(t.Context(), VerifyInput{Dir: dir, PublicKeyPEM: pem, Domain: "example.com"})
	if err != nil {
		t.Fatal(err)
	}
	return res
}

// TestVerifyJavaScriptPathOrder: a folder the JavaScript SDK signed, whose
// names sort differently in UTF-16, verifies and says which order matched;
// altered, it still fails.
func TestVerifyJavaScriptPathOrder(t *testing.T) {
	priv, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tests := []struct {
		name      string
		files     map[string]string
		wantOrder PathOrder
	}{
		{"emoji and fullwidth", map[string]string{"SKILL.md": "---\nname: s\n---\n", "😀.md": "smile", "ｆｕｌｌ.md": "full width"}, PathOrderUTF16},
		{"ASCII only: one order", map[string]string{"SKILL.md": "x", "b.md": "b", "a.md": "a"}, PathOrderUTF8},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := writeTree(t, tt.files)
			m, err := Canonicalize(t.Context(), dir)
			if err != nil {
				t.Fatal(err)
			}
			root := jsRoot(m.Files)
			if (root != m.Root) != (tt.wantOrder == PathOrderUTF16) {
				t.Fatalf("JS root %x vs UTF-8 root %x: the case does not test what it says", root, m.Root)
			}
			signAs(t, dir, priv, root, m.Files)
			res := verifyDir(t, dir, priv)
			if !res.Valid || res.PathOrder != tt.wantOrder || res.SkillHash != "sha256:"+hex.EncodeToString(root[:]) {
				t.Fatalf("result %+v, want valid in %s order", res, tt.wantOrder)
			}
			if slices.Contains(res.Warnings, WarningSkillHashMismatch) {
				t.Fatalf("skill_hash of the matched root flagged: %v", res.Warnings)
			}
			if tt.wantOrder == PathOrderUTF16 && !strings.Contains(res.Hint, "JavaScript") {
				t.Fatalf("hint %q does not say which canonicalization matched", res.Hint)
			}
			if err := os.WriteFile(filepath.Join(dir, "SKILL.md"), []byte("changed"), 0o644); err != nil {
				t.Fatal(err)
			}
			if res := verifyDir(t, dir, priv); res.Valid || res.reason != errdefs.ReasonPackageTampered {
				t.Fatalf("altered folder: %+v", res)
			}
		})
	}
}

// TestVerifyFileNamesSlideIntoContent: SHA-256(path || content) cannot
// tell "run.sh" + "echo" from "run.s" + "hecho", so the same signature
// verifies the renamed folder unless the names are checked.
func TestVerifyFileNamesSlideIntoContent(t *testing.T) {
	priv, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tests := []struct {
		name             string
		from, to         [2]string // path, content
		added, removed   string
		manifestMatchesS bool
	}{
		{"run.sh into run.s", [2]string{"run.sh", "echo hi\n"}, [2]string{"run.s", "hecho hi\n"}, "run.s", "run.sh", false},
		{"dir name into file name", [2]string{"a/b", "x"}, [2]string{"a", "/bx"}, "a", "a/b", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := writeTree(t, map[string]string{"SKILL.md": "---\nname: s\n---\n", tt.from[0]: tt.from[1]})
			m, err := Canonicalize(t.Context(), dir)
			if err != nil {
				t.Fatal(err)
			}
			signAs(t, dir, priv, m.Root, m.Files)
			if res := verifyDir(t, dir, priv); !res.Valid || res.PathOrder != PathOrderUTF8 {
				t.Fatalf("as signed: %+v", res)
			}
			if err := os.RemoveAll(filepath.Join(dir, strings.Split(tt.from[0], "/")[0])); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(dir, tt.to[0]), []byte(tt.to[1]), 0o644); err != nil {
				t.Fatal(err)
			}
			if m2, _ := Canonicalize(t.Context(), dir); m2.Root != m.Root {
				t.Fatalf("the renamed folder's root differs: the case does not test what it says")
			}
			res := verifyDir(t, dir, priv)
			if res.Valid || res.reason != errdefs.ReasonPackageTampered || res.Tampered == nil ||
				!slices.Equal(res.Tampered.Added, []string{tt.added}) || !slices.Equal(res.Tampered.Removed, []string{tt.removed}) {
				t.Fatalf("renamed folder: %+v tampered=%+v", res, res.Tampered)
			}
			if !strings.Contains(res.ErrorMessage, tt.added) || !strings.Contains(res.ErrorMessage, tt.removed) {
				t.Fatalf("message does not name the files: %s", res.ErrorMessage)
			}
		})
	}
}

// TestVerifyNoManifest: without a file_manifest the names cannot be
// checked, so the signature is refused rather than trusted blindly.
func TestVerifyNoManifest(t *testing.T) {
	priv, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	dir := writeTree(t, map[string]string{"SKILL.md": "x"})
	m, err := Canonicalize(t.Context(), dir)
	if err != nil {
		t.Fatal(err)
	}
	signAs(t, dir, priv, m.Root, nil)
	if res := verifyDir(t, dir, priv); res.Valid || res.reason != errdefs.ReasonMalformedSignature {
		t.Fatalf("no manifest: %+v", res)
	}
}

// TestVerifyNonUTF8NameHint: a name that is not UTF-8 is said to be one.
func TestVerifyNonUTF8NameHint(t *testing.T) {
	priv, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	dir := writeTree(t, map[string]string{"SKILL.md": "x"})
	m, err := Canonicalize(t.Context(), dir)
	if err != nil {
		t.Fatal(err)
	}
	signAs(t, dir, priv, m.Root, m.Files)
	if err := os.WriteFile(filepath.Join(dir, "bad\xff.md"), []byte("y"), 0o644); err != nil {
		t.Skipf("this file system refuses non-UTF-8 names: %v", err)
	}
	res := verifyDir(t, dir, priv)
	if res.Valid || !strings.Contains(res.Hint, "not valid UTF-8") {
		t.Fatalf("non-UTF-8 name: valid=%v hint=%q", res.Valid, res.Hint)
	}
}
