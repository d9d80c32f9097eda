package softhsmtest

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"testing"

	"github.com/transparency-dev/merkle/proof"
	"golang.org/x/mod/sumdb/note"

	"github.com/signerd/signerd/internal/auditlog"
	"github.com/signerd/signerd/internal/errdefs"
	"github.com/signerd/signerd/internal/store"
	"github.com/signerd/signerd/internal/store/boltstore"
)

const e2eOrigin = "signerd.e2e.test/log"

// TestLogCheckpointNotes runs the real daemon on SoftHSM: it creates the
// Ed25519 log key in the token (non-extractable), writes checkpoints as
// signed notes that sumdb/note verifies with the verifier key it logs,
// keeps the key across a restart, and a signature's record is a leaf whose
// inclusion proof verifies against the note's root.
func TestLogCheckpointNotes(t *testing.T) {
	d := startDaemon(t, "--audit-checkpoint-interval", "0", "--log-origin", e2eOrigin)
	dir := t.TempDir()
	mustSignctl(t, d, "key", "create", "release", "--algorithm", "ed25519")
	pkg := writeFile(t, dir, "a.so", []byte("package a"))
	mustSignctl(t, d, "sign", pkg, "--key", "release")
	vkey := loggedVerifierKey(t, d)
	if err := d.stop(t); err != nil { // SIGTERM writes the final checkpoint
		t.Fatalf("signerd exit: %v\n%s", err, d.logs.String())
	}
	first := checkNotes(t, d, vkey)

	// The key: Ed25519 in the token, non-extractable, and the one the
	// verifier key names.
	s := openRO(t, d.db)
	k, err := s.LogKey(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	sensitive, extractable, _, token := d.tok.PrivateKeyAttributes(t, k.Versions[0].CKAID)
	if !sensitive || extractable || !token {
		t.Fatalf("log key attributes: sensitive %v extractable %v token %v", sensitive, extractable, token)
	}
	if err := d.tok.ReadPrivateValue(t, k.Versions[0].CKAID); err == nil {
		t.Fatal("the log key's private value was readable")
	}

	// A restart finds the same key: same verifier key, no second key.
	d.start(t, "--audit-checkpoint-interval", "0", "--log-origin", e2eOrigin)
	if again := loggedVerifierKey(t, d); again != vkey {
		t.Fatalf("verifier key after a restart %s, want %s", again, vkey)
	}
	pkg2 := writeFile(t, dir, "b.so", []byte("package b"))
	mustSignctl(t, d, "sign", pkg2, "--key", "release")
	if err := d.stop(t); err != nil {
		t.Fatalf("signerd exit: %v\n%s", err, d.logs.String())
	}
	second := checkNotes(t, d, vkey)
	if second.Size <= first.Size {
		t.Fatalf("newest note after more records is of size %d, before %d", second.Size, first.Size)
	}

	s = openRO(t, d.db)
	defer s.Close()
	ctx := context.Background()
	recs, err := s.ListAudit(ctx, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	creates := 0
	for _, r := range recs {
		if r.Operation == "log.key.create" {
			creates++
		}
	}
	if creates != 1 {
		t.Fatalf("%d log.key.create records, want 1", creates)
	}
	// The log proves this digest and this signature were logged, against
	// the root the HSM signed in the first note.
	digest := sha256.Sum256([]byte("package a"))
	sigs, err := s.SignaturesByDigest(ctx, digest[:])
	if err != nil || len(sigs) != 1 {
		t.Fatalf("signature records of a.so: %d, %v", len(sigs), err)
	}
	leaf, err := s.SignatureLeaf(ctx, digest[:], sigs[0].Signature)
	if err != nil {
		t.Fatal(err)
	}
	if r := recs[leaf]; !bytes.Equal(r.Signature, sigs[0].Signature) || r.Digest != hex.EncodeToString(digest[:]) || r.Operation != "sign" {
		t.Fatalf("leaf %d is %+v, not the record of a.so's signature", leaf, r)
	}
	p, err := s.InclusionProof(ctx, leaf, first.Size)
	if err != nil {
		t.Fatal(err)
	}
	if err := proof.VerifyInclusion(store.LogHasher, leaf, first.Size, store.LeafHash(recs[leaf]), p, first.Root); err != nil {
		t.Fatalf("the signature's leaf does not verify against the first note: %v", err)
	}
	cp, err := s.ConsistencyProof(ctx, first.Size, second.Size)
	if err != nil {
		t.Fatal(err)
	}
	if err := proof.VerifyConsistency(store.LogHasher, first.Size, second.Size, cp, first.Root, second.Root); err != nil {
		t.Fatalf("the second note's tree does not extend the first's: %v", err)
	}
}

var verifierKeyLine = regexp.MustCompile(`verifier_key=(\S+)`)

// loggedVerifierKey is the verifier key signerd logs at start.
func loggedVerifierKey(t *testing.T, d *daemon) string {
	t.Helper()
	d.waitForLog(t, "verifier_key=")
	m := verifierKeyLine.FindAllStringSubmatch(d.logs.String(), -1)
	return m[len(m)-1][1]
}

func openRO(t *testing.T, path string) *boltstore.Store {
	t.Helper()
	s, err := boltstore.Open(context.Background(), path, boltstore.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// checkNotes opens the stopped daemon's database: every checkpoint has a
// note that sumdb/note verifies with vkey (and with the key rebuilt from
// the recorded public key), whose root is the log's root of its size and
// whose state line is the checkpoint's state digest. It returns the
// newest note.
func checkNotes(t *testing.T, d *daemon, vkey string) auditlog.CheckpointNote {
	t.Helper()
	ctx := context.Background()
	copyPath := filepath.Join(t.TempDir(), "copy.db")
	raw, err := os.ReadFile(d.db)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(copyPath, raw, 0o600); err != nil {
		t.Fatal(err)
	}
	s := openRO(t, copyPath)
	defer s.Close()
	k, err := s.LogKey(ctx)
	if err != nil {
		t.Fatal(err)
	}
	pub, err := x509.ParsePKIXPublicKey(k.Versions[0].PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	if want, _ := auditlog.VerifierKey(e2eOrigin, pub.(ed25519.PublicKey)); want != vkey {
		t.Fatalf("logged verifier key %s, the recorded key's is %s", vkey, want)
	}
	v, err := note.NewVerifier(vkey)
	if err != nil {
		t.Fatal(err)
	}
	cps, err := s.ListCheckpoints(ctx)
	if err != nil || len(cps) == 0 {
		t.Fatalf("checkpoints: %d, %v", len(cps), err)
	}
	var newest auditlog.CheckpointNote
	for _, c := range cps {
		n, err := note.Open(c.Note, note.VerifierList(v))
		if err != nil {
			t.Fatalf("checkpoint %d: sumdb/note does not verify its note: %v\n%s", c.Seq, err, c.Note)
		}
		cn, err := auditlog.ParseCheckpointText(n.Text)
		if err != nil {
			t.Fatal(err)
		}
		root, err := s.LogRoot(ctx, cn.Size)
		if err != nil {
			t.Fatal(err)
		}
		if cn.Origin != e2eOrigin || cn.Size != c.Seq || !bytes.Equal(cn.Root, root) || !bytes.Equal(cn.State, c.StateDigest) {
			t.Fatalf("checkpoint %d's note %+v does not match the log (root %x)", c.Seq, cn, root)
		}
		newest = cn
	}
	// The note someone kept still matches the log.
	if _, err := auditlog.CheckNote(ctx, s, vkey, cps[len(cps)-1].Note); err != nil {
		var ce *store.ChainError
		t.Fatalf("CheckNote of the newest note: %v (%v)", err, errors.As(err, &ce) && ce != nil)
	}
	if _, err := auditlog.CheckNote(ctx, s, vkey, []byte("not a note")); !errors.Is(err, errdefs.ErrFailedPrecondition) {
		t.Fatalf("CheckNote of garbage: %v", err)
	}
	return newest
}
