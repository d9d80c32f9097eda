package softhsmtest

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/note"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/signerd/signerd/client"
	signerv1 "github.com/signerd/signerd/gen/signer/v1"
	"github.com/signerd/signerd/internal/pkgsig"
	"github.com/signerd/signerd/internal/testutil/rfc9162"
)

// The verifiable log end to end: the real signerd and signctl, proofs
// checked by the independent RFC 9162 implementation of
// internal/testutil/rfc9162, checkpoints by golang.org/x/mod/sumdb/note in a
// binary of its own (notecheck), and signctl's offline checks tampered with.

var notecheck struct {
	once sync.Once
	path string
	err  error
}

// notecheckBin builds softhsm-test/notecheck once.
func notecheckBin(t *testing.T) string {
	t.Helper()
	notecheck.once.Do(func() {
		dir, err := os.MkdirTemp("", "signerd-notecheck-")
		if err != nil {
			notecheck.err = err
			return
		}
		notecheck.path = filepath.Join(dir, "notecheck")
		if out, err := exec.Command("go", "build", "-o", notecheck.path, "./notecheck").CombinedOutput(); err != nil {
			notecheck.err = fmt.Errorf("build notecheck: %v\n%s", err, out)
		}
	})
	if notecheck.err != nil {
		t.Fatal(notecheck.err)
	}
	return notecheck.path
}

// checkpointOf is a checkpoint read by the test itself: the note checked
// by notecheck, the body parsed here.
type checkpointOf struct {
	origin string
	size   uint64
	root   []byte
}

func openCheckpoint(t *testing.T, vkey, signed string) checkpointOf {
	t.Helper()
	f := writeFile(t, t.TempDir(), "checkpoint.note", []byte(signed))
	cmd := exec.Command(notecheckBin(t), vkey, f)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		t.Fatalf("notecheck refused the daemon's checkpoint: %v: %s\n%s", err, errb.String(), signed)
	}
	lines := strings.Split(out.String(), "\n")
	if len(lines) < 4 {
		t.Fatalf("checkpoint body %q", out.String())
	}
	size, err := strconv.ParseUint(lines[1], 10, 64)
	if err != nil {
		t.Fatalf("checkpoint size %q: %v", lines[1], err)
	}
	root, err := base64.StdEncoding.DecodeString(lines[2])
	if err != nil || len(root) != 32 {
		t.Fatalf("checkpoint root %q: %v", lines[2], err)
	}
	return checkpointOf{origin: lines[0], size: size, root: root}
}

// bundleJSON is the bundle as the contract spells it; decoding with
// DisallowUnknownFields and checking every key is present pins the shape.
type bundleJSON struct {
	Origin         string   `json:"origin"`
	Leaf           []byte   `json:"leaf"`
	LeafIndex      uint64   `json:"leaf_index"`
	TreeSize       uint64   `json:"tree_size"`
	InclusionProof [][]byte `json:"inclusion_proof"`
	Checkpoint     string   `json:"checkpoint"`
}

func parseBundle(t *testing.T, data []byte) bundleJSON {
	t.Helper()
	var keys map[string]json.RawMessage
	if err := json.Unmarshal(data, &keys); err != nil {
		t.Fatalf("bundle: %v\n%s", err, data)
	}
	got := slices.Sorted(func(yield func(string) bool) {
		for k := range keys {
			if !yield(k) {
				return
			}
		}
	})
	if want := []string{"checkpoint", "inclusion_proof", "leaf", "leaf_index", "origin", "tree_size"}; !slices.Equal(got, want) {
		t.Fatalf("bundle keys %v, want exactly %v", got, want)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var b bundleJSON
	if err := dec.Decode(&b); err != nil {
		t.Fatal(err)
	}
	return b
}

// checkBundleIndependently checks a bundle with the test's own verifiers.
func checkBundleIndependently(t *testing.T, vkey string, b bundleJSON) {
	t.Helper()
	cp := openCheckpoint(t, vkey, b.Checkpoint)
	if cp.origin != b.Origin || cp.size != b.TreeSize {
		t.Fatalf("bundle names %s/%d, its checkpoint %s/%d", b.Origin, b.TreeSize, cp.origin, cp.size)
	}
	if err := rfc9162.VerifyInclusion(b.LeafIndex, b.TreeSize, rfc9162.LeafHash(b.Leaf), b.InclusionProof, cp.root); err != nil {
		t.Fatalf("the daemon's inclusion proof of leaf %d in %d: %v", b.LeafIndex, b.TreeSize, err)
	}
}

func TestLogEndToEnd(t *testing.T) {
	d := startDaemon(t)
	dir := t.TempDir()
	mustSignctl(t, d, "key", "create", "release", "--algorithm", "ed25519")
	pubFile := writeFile(t, dir, "release.pub.pem", []byte(mustSignctl(t, d, "key", "public", "release").stdout))
	a := writeFile(t, dir, "a.so", []byte("package a"))
	b := writeFile(t, dir, "b.so", []byte("package b"))
	mustSignctl(t, d, "sign", a, "--key", "release")
	mustSignctl(t, d, "sign", b, "--key", "release")

	vkey := strings.TrimSpace(mustSignctl(t, d, "log", "public-key").stdout)
	vkeyFile := writeFile(t, dir, "log.vkey", []byte(vkey+"\n"))
	if _, err := note.NewVerifier(vkey); err != nil {
		t.Fatalf("log public-key %q: %v", vkey, err)
	}
	cp := openCheckpoint(t, vkey, mustSignctl(t, d, "log", "checkpoint").stdout)
	if j := mustSignctl(t, d, "log", "public-key", "-o", "json").json(t); j["origin"] != cp.origin || j["verifier_key"] != vkey {
		t.Fatalf("log public-key -o json %v, checkpoint origin %q", j, cp.origin)
	}

	// A proof bundle, its exact -o json shape, checked independently.
	out := mustSignctl(t, d, "log", "proof", a, "-o", "json").stdout
	bundleA := parseBundle(t, []byte(out))
	written, err := os.ReadFile(a + ".proof")
	if err != nil || !bytes.Equal(written, []byte(out)) {
		t.Fatalf("a.so.proof (%v) differs from the -o json output", err)
	}
	if bundleA.Origin != cp.origin {
		t.Fatalf("bundle origin %q, checkpoint's %q", bundleA.Origin, cp.origin)
	}
	checkBundleIndependently(t, vkey, bundleA)
	mustSignctl(t, d, "log", "proof", b)
	bundleB := parseBundle(t, mustRead(t, b+".proof"))
	checkBundleIndependently(t, vkey, bundleB)
	if bundleA.LeafIndex == bundleB.LeafIndex {
		t.Fatalf("two signatures, one leaf %d", bundleA.LeafIndex)
	}

	// Offline verification with the proof required, no daemon.
	ok := signctl(t, nil, "verify", a, "--trust-key", pubFile, "--require-proof", a+".proof", "--log-key", vkeyFile, "-o", "json")
	if ok.code != 0 {
		t.Fatalf("verify --require-proof: exit %d\n%s%s", ok.code, ok.stdout, ok.stderr)
	}
	if j := ok.json(t); j["verified"] != true || j["log_leaf_index"] != float64(bundleA.LeafIndex) || j["log_origin"] != cp.origin {
		t.Fatalf("verify --require-proof -o json: %v", j)
	}
	if r := signctl(t, nil, "verify", a, "--trust-key", pubFile, "--require-proof", a+".proof", "--log-key", vkey); r.code != 0 || !strings.Contains(r.stdout, "logged as leaf") {
		t.Fatalf("verify --log-key given inline: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}

	// Tampering, each refused with its reason and exit code.
	other := otherKeyCheckpoint(t, bundleA.Checkpoint)
	changedLeaf := bundleA
	changedLeaf.Leaf = bytes.Clone(bundleA.Leaf)
	// The caller's name, a field the signature match does not look at:
	// only the inclusion proof can catch it.
	at := bytes.Index(changedLeaf.Leaf, []byte("uid:"))
	if at < 0 {
		t.Fatalf("no caller uid in the leaf %q", changedLeaf.Leaf)
	}
	changedLeaf.Leaf[at+1] = 'X'
	badHash := bundleA
	badHash.InclusionProof = slices.Clone(bundleA.InclusionProof)
	if len(badHash.InclusionProof) == 0 {
		t.Fatal("a two-leaf-or-more tree gave an empty proof")
	}
	badHash.InclusionProof[0] = bytes.Repeat([]byte{7}, 32)
	tests := []struct {
		name   string
		bundle []byte
		key    string
		code   int
		reason string
	}{
		{"proof of another signature", mustRead(t, b+".proof"), vkeyFile, 1, "LOG_LEAF_MISMATCH"},
		{"changed leaf", marshal(t, changedLeaf), vkeyFile, 1, "LOG_PROOF_INVALID"},
		{"changed proof hash", marshal(t, badHash), vkeyFile, 1, "LOG_PROOF_INVALID"},
		{"checkpoint by another key", marshal(t, withCheckpoint(bundleA, other.signed)), vkeyFile, 1, "LOG_CHECKPOINT_INVALID"},
		{"the other key given", []byte(out), other.vkey, 1, "LOG_CHECKPOINT_INVALID"},
		{"not a bundle", []byte(`{"origin":"x"}`), vkeyFile, 2, "MALFORMED_PROOF"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := writeFile(t, t.TempDir(), "bundle.json", tc.bundle)
			r := signctl(t, nil, "verify", a, "--trust-key", pubFile, "--require-proof", f, "--log-key", tc.key, "-o", "json")
			if r.code != tc.code {
				t.Fatalf("exit %d, want %d\n%s%s", r.code, tc.code, r.stdout, r.stderr)
			}
			// A required proof that fails admits nothing, and the
			// text says so without "admitted unverified by policy".
			if j := r.json(t); j["verified"] != false || j["reason"] != tc.reason || j["admitted"] != false {
				t.Fatalf("verify: %v, want reason %s, not admitted", j, tc.reason)
			}
			if r := signctl(t, nil, "verify", a, "--trust-key", pubFile, "--require-proof", f, "--log-key", tc.key); r.code != tc.code || strings.Contains(r.stderr, "admitted") {
				t.Fatalf("text: exit %d\n%s", r.code, r.stderr)
			}
		})
	}
	if r := signctl(t, nil, "verify", a, "--trust-key", pubFile, "--require-proof", a+".proof", "--log-key", "not-a-key"); r.code != 2 {
		t.Fatalf("a bad --log-key: exit %d\n%s", r.code, r.stderr)
	}

	// The RPCs behind it: Verify with the proof asked for, and
	// consistency proofs, checked independently.
	c, err := client.DialUnix(d.socket)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	mustSignctl(t, d, "trust", "add", "--org", "acme", "--key", "release")
	// Online verification takes the proof requirement too (checked here,
	// offline, after the daemon's verdict).
	if r := signctl(t, d, "verify", a, "--org", "acme", "--require-proof", a+".proof", "--log-key", vkeyFile, "-o", "json"); r.code != 0 || r.json(t)["log_origin"] != cp.origin {
		t.Fatalf("online verify --require-proof: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	if r := signctl(t, d, "verify", b, "--org", "acme", "--require-proof", a+".proof", "--log-key", vkeyFile, "-o", "json"); r.code != 1 || r.json(t)["reason"] != "LOG_LEAF_MISMATCH" || r.json(t)["admitted"] != false {
		t.Fatalf("online verify of b with a's proof: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	if r := signctl(t, nil, "verify", a, "--trust-key", pubFile, "--require-proof", a+".proof"); r.code != 2 || !strings.Contains(r.stderr, "--log-key") {
		t.Fatalf("--require-proof without --log-key: exit %d %s", r.code, r.stderr)
	}
	digest := sha256File(t, a)
	vr, err := c.Signer.Verify(ctx, &signerv1.VerifyRequest{Org: "acme", Digest: digest, SignatureDocument: mustRead(t, a+".sig"), IncludeLogProof: true})
	if err != nil {
		t.Fatal(err)
	}
	lp := vr.GetLogProof()
	if lp == nil || lp.GetLeafIndex() != bundleA.LeafIndex || !bytes.Equal(lp.GetLeaf(), bundleA.Leaf) {
		t.Fatalf("Verify's log proof %v, want leaf %d", lp, bundleA.LeafIndex)
	}
	checkBundleIndependently(t, vkey, bundleJSON{Origin: lp.GetOrigin(), Leaf: lp.GetLeaf(), LeafIndex: lp.GetLeafIndex(),
		TreeSize: lp.GetTreeSize(), InclusionProof: lp.GetInclusionProof(), Checkpoint: string(lp.GetCheckpoint())})
	if vr, err := c.Signer.Verify(ctx, &signerv1.VerifyRequest{Org: "acme", Digest: digest, SignatureDocument: mustRead(t, a+".sig")}); err != nil || vr.GetLogProof() != nil {
		t.Fatalf("Verify without the flag: %v, proof %v", err, vr.GetLogProof())
	}

	// A signature the org trusts but signerd never made is not in the log:
	// asked for a proof, Verify refuses rather than answer without one.
	extPub, extPriv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKIXPublicKey(extPub)
	if err != nil {
		t.Fatal(err)
	}
	extPEM := writeFile(t, dir, "ext.pub.pem", pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}))
	mustSignctl(t, d, "trust", "add", "--org", "acme", "--public-key", extPEM)
	extDoc := pkgsig.NewDocument([32]byte(digest), extPub, ed25519.Sign(extPriv, digest), time.Now()).Encode()
	if _, err := c.Signer.Verify(ctx, &signerv1.VerifyRequest{Org: "acme", Digest: digest, SignatureDocument: extDoc}); err != nil {
		t.Fatalf("Verify of the external signature: %v", err)
	}
	if _, err := c.Signer.Verify(ctx, &signerv1.VerifyRequest{Org: "acme", Digest: digest, SignatureDocument: extDoc, IncludeLogProof: true}); status.Code(err) != codes.NotFound {
		t.Fatalf("Verify with include_log_proof of a signature never logged: %v, want NOT_FOUND", err)
	}

	first := cp
	for range 3 {
		mustSignctl(t, d, "sign", a, "--key", "release", "--out", filepath.Join(dir, "again.sig"))
	}
	second := openCheckpoint(t, vkey, mustSignctl(t, d, "log", "checkpoint", "--min-size", strconv.FormatUint(first.size+3, 10)).stdout)
	if second.size < first.size+3 {
		t.Fatalf("checkpoint --min-size %d gave %d leaves", first.size+3, second.size)
	}
	cr, err := c.Log.GetConsistencyProof(ctx, &signerv1.GetConsistencyProofRequest{FirstSize: first.size, SecondSize: second.size})
	if err != nil {
		t.Fatal(err)
	}
	if err := rfc9162.VerifyConsistency(first.size, second.size, first.root, second.root, cr.GetProof()); err != nil {
		t.Fatalf("the daemon's consistency proof %d to %d: %v", first.size, second.size, err)
	}
	if _, err := c.Log.GetConsistencyProof(ctx, &signerv1.GetConsistencyProofRequest{FirstSize: second.size + 100, SecondSize: second.size + 200}); err == nil {
		t.Fatal("a consistency proof past the log's end was given")
	}
}

func mustRead(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func marshal(t *testing.T, b bundleJSON) []byte {
	t.Helper()
	out, err := json.Marshal(b)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func withCheckpoint(b bundleJSON, signed string) bundleJSON {
	b.Checkpoint = signed
	return b
}

// otherKeyCheckpoint re-signs a checkpoint's body with a new key of the
// same name: a forger's checkpoint.
func otherKeyCheckpoint(t *testing.T, signed string) struct{ signed, vkey string } {
	t.Helper()
	body := signed[:strings.Index(signed, "\n\n")+1]
	name := strings.SplitN(strings.TrimPrefix(signed[len(body)+1:], "— "), " ", 2)[0]
	skey, vkey, err := note.GenerateKey(rand.Reader, name)
	if err != nil {
		t.Fatal(err)
	}
	s, err := note.NewSigner(skey)
	if err != nil {
		t.Fatal(err)
	}
	out, err := note.Sign(&note.Note{Text: body}, s)
	if err != nil {
		t.Fatal(err)
	}
	return struct{ signed, vkey string }{string(out), vkey}
}

func sha256File(t *testing.T, path string) []byte {
	t.Helper()
	sum := sha256.Sum256(mustRead(t, path))
	return sum[:]
}
