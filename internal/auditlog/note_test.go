package auditlog

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	bolt "go.etcd.io/bbolt"
	"golang.org/x/mod/sumdb/note"

	"github.com/signerd/signerd/internal/errdefs"
	"github.com/signerd/signerd/internal/store"
	"github.com/signerd/signerd/internal/store/boltstore"
)

// TestCheckpointNoteFormat pins the text and checks the signed note with
// sumdb/note itself: any note verifier accepts it with the verifier key.
func TestCheckpointNoteFormat(t *testing.T) {
	root := bytes.Repeat([]byte{0x11}, 32)
	state := bytes.Repeat([]byte{0x22}, 32)
	text, err := CheckpointText("signerd.example.com/log", 1234, root, state)
	if err != nil {
		t.Fatal(err)
	}
	const want = "signerd.example.com/log\n1234\nERERERERERERERERERERERERERERERERERERERERERE=\nsignerd-state IiIiIiIiIiIiIiIiIiIiIiIiIiIiIiIiIiIiIiIiIiI=\n"
	if string(text) != want {
		t.Fatalf("CheckpointText =\n%q\nwant\n%q", text, want)
	}

	pub := goldenLogKey.Public().(ed25519.PublicKey)
	vkey := goldenVerifierKey(t)
	// The verifier key, built by hand from sumdb/note's definition.
	h := sha256.Sum256(append([]byte(goldenOrigin+"\n\x01"), pub...))
	wantVkey := fmt.Sprintf("%s+%08x+%s", goldenOrigin, binary.BigEndian.Uint32(h[:4]), base64.StdEncoding.EncodeToString(append([]byte{1}, pub...)))
	if vkey != wantVkey {
		t.Fatalf("VerifierKey = %s, want %s", vkey, wantVkey)
	}
	signer, err := NewNoteSigner(goldenOrigin, goldenLogKey)
	if err != nil {
		t.Fatal(err)
	}
	msg, err := SignCheckpointNote(signer, 1234, root, state)
	if err != nil {
		t.Fatal(err)
	}
	v, err := note.NewVerifier(vkey)
	if err != nil {
		t.Fatal(err)
	}
	n, err := note.Open(msg, note.VerifierList(v))
	if err != nil {
		t.Fatalf("sumdb/note does not open the checkpoint: %v\n%s", err, msg)
	}
	if n.Text != strings.Replace(want, "signerd.example.com", "signerd.test", 1) || len(n.Sigs) != 1 || n.Sigs[0].Name != goldenOrigin {
		t.Fatalf("opened note %+v", n)
	}
	c, err := OpenCheckpointNote(msg, vkey)
	if err != nil || c.Size != 1234 || !bytes.Equal(c.Root, root) || !bytes.Equal(c.State, state) || c.Origin != goldenOrigin {
		t.Fatalf("OpenCheckpointNote = %+v, %v", c, err)
	}

	// Another key's verifier refuses it; an edited note does not verify.
	other := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{8}, 32))
	otherVkey, _ := VerifierKey(goldenOrigin, other.Public().(ed25519.PublicKey))
	if _, err := OpenCheckpointNote(msg, otherVkey); !errors.Is(err, errdefs.ErrFailedPrecondition) {
		t.Fatalf("a note opened with another key: %v", err)
	}
	edited := bytes.Replace(msg, []byte("1234"), []byte("1235"), 1)
	if _, err := OpenCheckpointNote(edited, vkey); !errors.Is(err, errdefs.ErrFailedPrecondition) {
		t.Fatalf("an edited note: %v", err)
	}
}

func TestParseCheckpointTextRefuses(t *testing.T) {
	root := base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{1}, 32))
	for _, text := range []string{
		"",
		"origin\n12\n",
		"origin\n12\n" + root,
		"\n12\n" + root + "\n",
		"origin\n-1\n" + root + "\n",
		"origin\n012\n" + root + "\n",
		"origin\n12\nnot base64\n",
		"origin\n12\n" + base64.StdEncoding.EncodeToString([]byte("short")) + "\n",
		"origin\n12\n" + root + "\nsignerd-state !!\n",
		"origin\n12\n" + root + "\nsignerd-state AAAA\nsignerd-state AAAA\n",
	} {
		if _, err := ParseCheckpointText(text); !errors.Is(err, errdefs.ErrInvalidArgument) {
			t.Errorf("ParseCheckpointText(%q) = %v, want ErrInvalidArgument", text, err)
		}
	}
	// Unknown extension lines are other data, ignored.
	c, err := ParseCheckpointText("origin\n12\n" + root + "\nwitness-foo bar\n")
	if err != nil || c.Size != 12 || c.State != nil {
		t.Fatalf("a note with an unknown extension: %+v, %v", c, err)
	}
	for _, o := range []string{"", "a b", "a+b", "tab\t", "nl\n"} {
		if _, err := CheckpointText(o, 1, bytes.Repeat([]byte{1}, 32), nil); !errors.Is(err, errdefs.ErrInvalidArgument) {
			t.Errorf("origin %q accepted", o)
		}
	}
}

// TestCheckNote: a note someone kept still matches the log, until the log
// is rewritten (with its chain and tree: only the held note can tell) or
// cut below it.
func TestCheckNote(t *testing.T) {
	ctx := context.Background()
	golden := writeGolden(t, newKey(t))
	s, err := boltstore.Open(ctx, golden, boltstore.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	cps, err := s.ListCheckpoints(ctx)
	s.Close()
	if err != nil || len(cps) != len(checkpointAt) {
		t.Fatalf("golden checkpoints: %d, %v", len(cps), err)
	}
	held := cps[len(cps)-1].Note // of 10 leaves
	vkey := goldenVerifierKey(t)

	for _, tt := range []struct {
		name     string
		tamper   tamper
		wantSeq  uint64
		wantKind string
	}{
		{name: "intact"},
		{name: "rewritten with chain and tree", tamper: rewrite(8), wantSeq: 10, wantKind: store.ChainTreeRewritten},
		{name: "truncated below the note", tamper: truncate(7), wantSeq: 10, wantKind: store.ChainDeleted},
	} {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "db")
			copyFile(t, golden, path)
			if tt.tamper != nil {
				db, err := bolt.Open(path, 0o600, nil)
				if err != nil {
					t.Fatal(err)
				}
				if err := db.Update(tt.tamper); err != nil {
					t.Fatal(err)
				}
				db.Close()
			}
			s, err := boltstore.Open(ctx, path, boltstore.Options{ReadOnly: true})
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			if tt.wantKind != "" {
				// The store itself sees nothing wrong: the attacker
				// rebuilt the chain and the tree.
				if err := s.VerifyAudit(ctx); err != nil {
					t.Fatalf("VerifyAudit after a careful rewrite: %v", err)
				}
			}
			n, err := CheckNote(ctx, s, vkey, held)
			if tt.wantKind == "" {
				if err != nil || n.Size != 10 {
					t.Fatalf("CheckNote on the intact log = %+v, %v", n, err)
				}
				return
			}
			var ce *store.ChainError
			if !errors.As(err, &ce) || ce.Seq != tt.wantSeq || ce.Kind != tt.wantKind {
				t.Fatalf("CheckNote = %v; want seq %d %q", err, tt.wantSeq, tt.wantKind)
			}
		})
	}
	// A note that does not verify is refused before any comparison.
	s2, _ := boltstore.Open(ctx, golden, boltstore.Options{ReadOnly: true})
	defer s2.Close()
	if _, err := CheckNote(ctx, s2, vkey, bytes.Replace(held, []byte("\n10\n"), []byte("\n9\n"), 1)); !errors.Is(err, errdefs.ErrFailedPrecondition) {
		t.Fatalf("CheckNote of an edited note: %v", err)
	}
}
