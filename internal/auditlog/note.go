package auditlog

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"golang.org/x/mod/sumdb/note"

	"github.com/signerd/signerd/internal/errdefs"
	"github.com/signerd/signerd/internal/store"
)

// Checkpoints of the transparency log are C2SP tlog-checkpoint signed
// notes (https://c2sp.org/tlog-checkpoint, https://c2sp.org/signed-note):
//
//	signerd.host.example/log
//	1234
//	<base64 RFC 9162 root of leaves 0..1233>
//	signerd-state <base64 state digest>
//
//	— signerd.host.example/log <base64(key hash ‖ Ed25519 signature)>
//
// The first three lines are the standard checkpoint, so any note verifier
// and tlog client (sumdb/note, witnesses) accepts it with the verifier
// key. The fourth is an extension line (C2SP allows "other data" after the
// root): the state digest (store.StateDigest) of trust, grants, policy and
// key states after the last leaf, so the note vouches for the security
// state as the ECDSA checkpoint beside it does. Why both: the ECDSA
// checkpoint (checkpoint.go) is what every existing verifier, and every
// checkpoint written before the tree, is checked with, over the hash chain;
// the note is the ecosystem's form, over the tree. Each is complete on its
// own; audit verify checks both.
//
// The note is signed by the log key, an Ed25519 key in the HSM
// (CKM_EDDSA); the key name in the signature line is the origin.

// StateExtension is the keyword of the note's state line.
const StateExtension = "signerd-state"

// CheckpointNote is a checkpoint note's text, parsed.
type CheckpointNote struct {
	Origin string
	Size   uint64
	Root   []byte
	// State is the state digest of the signerd-state line; nil if the
	// note has none (a note from another log).
	State []byte
}

// CheckOrigin accepts an origin usable as a note key name: non-empty,
// printable, without spaces or '+' (sumdb/note's rule for names).
func CheckOrigin(origin string) error {
	if origin == "" || !utf8.ValidString(origin) || strings.ContainsRune(origin, '+') ||
		strings.ContainsFunc(origin, func(r rune) bool { return unicode.IsSpace(r) || !unicode.IsPrint(r) }) {
		return fmt.Errorf("log origin %q must be printable, without spaces or '+', e.g. signerd.example.com/log: %w", origin, errdefs.ErrInvalidArgument)
	}
	return nil
}

// CheckpointText is the note text of a checkpoint of size leaves with
// root, vouching for state (the signerd-state line; omitted if nil).
func CheckpointText(origin string, size uint64, root, state []byte) ([]byte, error) {
	if err := CheckOrigin(origin); err != nil {
		return nil, err
	}
	if len(root) != store.AuditHashSize {
		return nil, fmt.Errorf("root is %d bytes, want %d: %w", len(root), store.AuditHashSize, errdefs.ErrInvalidArgument)
	}
	var b bytes.Buffer
	fmt.Fprintf(&b, "%s\n%d\n%s\n", origin, size, base64.StdEncoding.EncodeToString(root))
	if state != nil {
		fmt.Fprintf(&b, "%s %s\n", StateExtension, base64.StdEncoding.EncodeToString(state))
	}
	return b.Bytes(), nil
}

// ParseCheckpointText parses a checkpoint note's text (what note.Open
// returns as Note.Text). Extension lines other than signerd-state are
// ignored, as C2SP requires of a client that does not know them.
func ParseCheckpointText(text string) (CheckpointNote, error) {
	bad := func(why string) (CheckpointNote, error) {
		return CheckpointNote{}, fmt.Errorf("not a tlog checkpoint: %s: %w", why, errdefs.ErrInvalidArgument)
	}
	if !strings.HasSuffix(text, "\n") {
		return bad("the text does not end with a newline")
	}
	lines := strings.Split(strings.TrimSuffix(text, "\n"), "\n")
	if len(lines) < 3 {
		return bad("fewer than three lines")
	}
	var c CheckpointNote
	c.Origin = lines[0]
	if c.Origin == "" {
		return bad("empty origin")
	}
	size, err := strconv.ParseUint(lines[1], 10, 64)
	if err != nil || strconv.FormatUint(size, 10) != lines[1] {
		return bad("the tree size is not a decimal number")
	}
	c.Size = size
	root, err := base64.StdEncoding.DecodeString(lines[2])
	if err != nil || len(root) != store.AuditHashSize {
		return bad("the root hash is not 32 bytes of base64")
	}
	c.Root = root
	for _, l := range lines[3:] {
		rest, ok := strings.CutPrefix(l, StateExtension+" ")
		if !ok {
			continue
		}
		if c.State != nil {
			return bad("two signerd-state lines")
		}
		if c.State, err = base64.StdEncoding.DecodeString(rest); err != nil || len(c.State) == 0 {
			return bad("the signerd-state line is not base64")
		}
	}
	return c, nil
}

// noteSigner signs notes with an Ed25519 crypto.Signer (the HSM's log key).
type noteSigner struct {
	name   string
	hash   uint32
	signer crypto.Signer
	pub    ed25519.PublicKey
}

func (s *noteSigner) Name() string    { return s.name }
func (s *noteSigner) KeyHash() uint32 { return s.hash }

// Sign signs msg with the HSM (pure Ed25519, CKM_EDDSA) and checks the
// signature before it leaves: a faulty token never produces a note that
// fails later.
func (s *noteSigner) Sign(msg []byte) ([]byte, error) {
	sig, err := s.signer.Sign(rand.Reader, msg, crypto.Hash(0))
	if err != nil {
		return nil, fmt.Errorf("sign checkpoint note: %w", err)
	}
	if !ed25519.Verify(s.pub, msg, sig) {
		return nil, fmt.Errorf("the log key produced a note signature that does not verify: %w", errdefs.ErrInternal)
	}
	return sig, nil
}

// NewNoteSigner returns a note signer named name (the origin) for an
// Ed25519 crypto.Signer, whose key never leaves the HSM.
func NewNoteSigner(name string, signer crypto.Signer) (note.Signer, error) {
	if err := CheckOrigin(name); err != nil {
		return nil, err
	}
	pub, ok := signer.Public().(ed25519.PublicKey)
	if !ok {
		return nil, fmt.Errorf("log key is %T, want Ed25519: %w", signer.Public(), errdefs.ErrInternal)
	}
	return &noteSigner{name: name, hash: noteKeyHash(name, pub), signer: signer, pub: pub}, nil
}

// noteKeyHash is sumdb/note's key hash of an Ed25519 key: the first four
// bytes of SHA-256(name ‖ "\n" ‖ 0x01 ‖ public key), big-endian.
func noteKeyHash(name string, pub ed25519.PublicKey) uint32 {
	h := sha256.New()
	h.Write([]byte(name + "\n"))
	h.Write([]byte{0x01})
	h.Write(pub)
	return binary.BigEndian.Uint32(h.Sum(nil))
}

// VerifierKey is the note verifier key of the log key for origin:
// "<name>+<hex key hash>+<base64(0x01 ‖ public key)>", what
// `signctl log public-key` prints and note.NewVerifier reads.
func VerifierKey(origin string, pub ed25519.PublicKey) (string, error) {
	if err := CheckOrigin(origin); err != nil {
		return "", err
	}
	vkey, err := note.NewEd25519VerifierKey(origin, pub)
	if err != nil {
		return "", fmt.Errorf("log verifier key: %v: %w", err, errdefs.ErrInvalidArgument)
	}
	return vkey, nil
}

// SignCheckpointNote signs a checkpoint of size leaves with root and state
// as a note.
func SignCheckpointNote(signer note.Signer, size uint64, root, state []byte) ([]byte, error) {
	text, err := CheckpointText(signer.Name(), size, root, state)
	if err != nil {
		return nil, err
	}
	return note.Sign(&note.Note{Text: string(text)}, signer)
}

// OpenCheckpointNote verifies msg with the verifier key vkey and parses its
// checkpoint; the origin must be the key's name.
// ErrNotByLogKey: a checkpoint note bears no signature by the verifier key
// it was opened with (OpenCheckpointNote), as opposed to a signature by
// that key that does not verify.
var ErrNotByLogKey = errors.New("not signed by this log key")

func OpenCheckpointNote(msg []byte, vkey string) (CheckpointNote, error) {
	v, err := note.NewVerifier(vkey)
	if err != nil {
		return CheckpointNote{}, fmt.Errorf("log verifier key: %v: %w", err, errdefs.ErrInvalidArgument)
	}
	n, err := note.Open(msg, note.VerifierList(v))
	if err != nil {
		var unverified *note.UnverifiedNoteError
		if errors.As(err, &unverified) {
			return CheckpointNote{}, fmt.Errorf("the checkpoint note is not signed by log key %s: %w", v.Name(), errors.Join(ErrNotByLogKey, errdefs.ErrFailedPrecondition))
		}
		return CheckpointNote{}, fmt.Errorf("checkpoint note: %v: %w", err, errdefs.ErrFailedPrecondition)
	}
	c, err := ParseCheckpointText(n.Text)
	if err != nil {
		return c, err
	}
	if c.Origin != v.Name() {
		return c, fmt.Errorf("the checkpoint note's origin %q is not its key's name %q: %w", c.Origin, v.Name(), errdefs.ErrFailedPrecondition)
	}
	return c, nil
}

// noteText returns the text of a signed note without checking its
// signatures: what the ECDSA checkpoint beside it is compared with when no
// verifier key is at hand (offline verification with the audit key only).
func noteText(msg []byte) (string, error) {
	i := bytes.LastIndex(msg, []byte("\n\n"))
	if i < 0 {
		return "", fmt.Errorf("not a signed note: no blank line before the signatures: %w", errdefs.ErrInvalidArgument)
	}
	return string(msg[:i+1]), nil
}

// checkNoteRoot checks c's note (if any) against c and against the log's
// tree: a *store.ChainError if it does not match, another error if the
// log could not be read.
func checkNoteRoot(ctx context.Context, log Log, c store.Checkpoint) error {
	if len(c.Note) == 0 {
		return nil
	}
	bad := func(kind, msg string) error {
		return &store.ChainError{Seq: c.Seq, Kind: kind, Message: msg}
	}
	text, err := noteText(c.Note)
	if err != nil {
		return bad(store.ChainBadCheckpoint, fmt.Sprintf("the note of the checkpoint at %d is unreadable: %v", c.Seq, err))
	}
	n, err := ParseCheckpointText(text)
	if err != nil {
		return bad(store.ChainBadCheckpoint, fmt.Sprintf("the note of the checkpoint at %d is unreadable: %v", c.Seq, err))
	}
	if n.Size != c.Seq || !bytes.Equal(n.State, c.StateDigest) {
		return bad(store.ChainBadCheckpoint, fmt.Sprintf("the note of the checkpoint at %d names tree size %d and another state: it is not this checkpoint's", c.Seq, n.Size))
	}
	tl, ok := log.(TreeLog)
	if !ok {
		return nil
	}
	return checkRoot(ctx, tl, n)
}

// checkRoot compares a note's root with the log's root of the same size.
func checkRoot(ctx context.Context, tl TreeLog, n CheckpointNote) error {
	root, err := tl.LogRoot(ctx, n.Size)
	if errors.Is(err, errdefs.ErrInvalidArgument) {
		return &store.ChainError{Seq: n.Size, Kind: store.ChainDeleted,
			Message: fmt.Sprintf("a checkpoint note covers %d leaves, more than the log holds: leaves were removed", n.Size)}
	}
	if err != nil {
		return err
	}
	if !bytes.Equal(root, n.Root) {
		return &store.ChainError{Seq: n.Size, Kind: store.ChainTreeRewritten,
			Message: fmt.Sprintf("a checkpoint note signed root %s for %d leaves, but the log's root of %d leaves is %s: two checkpoints of one size with different roots, so the log was rewritten",
				base64.StdEncoding.EncodeToString(n.Root), n.Size, n.Size, base64.StdEncoding.EncodeToString(root))}
	}
	return nil
}

// CheckNote verifies a checkpoint note someone kept (a client, a witness)
// with the log's verifier key and checks that the log still has that tree:
// its root of the note's size must be the note's root. It returns the
// parsed note and nil, a *store.ChainError (store.ChainTreeRewritten: the
// log now has another tree of that size; store.ChainDeleted: the log is
// shorter than the note), or another error for a note that does not verify.
func CheckNote(ctx context.Context, log TreeLog, vkey string, msg []byte) (CheckpointNote, error) {
	n, err := OpenCheckpointNote(msg, vkey)
	if err != nil {
		return n, err
	}
	return n, checkRoot(ctx, log, n)
}

// VerifyCheckpointNote checks that c's note (if any) is signed by the log
// key vkey: store.ChainBadCheckpoint at c.Seq if not.
func VerifyCheckpointNote(vkey string, c store.Checkpoint) error {
	if len(c.Note) == 0 {
		return nil
	}
	n, err := OpenCheckpointNote(c.Note, vkey)
	if errors.Is(err, ErrNotByLogKey) {
		// As a checkpoint of another audit key: the operator may have
		// given the wrong key, or the note was signed by another one.
		return &store.ChainError{Seq: c.Seq, Kind: store.ChainWrongCheckpointKey,
			Message: fmt.Sprintf("the note of the checkpoint at %d is not signed by the log key given, %s (%s): is that the right log key ('signctl log public-key')? If it is, the note was signed by another key",
				c.Seq, keyID(vkey), noteSigners(c.Note))}
	}
	if err != nil {
		return &store.ChainError{Seq: c.Seq, Kind: store.ChainBadCheckpoint,
			Message: fmt.Sprintf("the note of the checkpoint at %d does not verify with the log key: %v", c.Seq, err)}
	}
	if n.Size != c.Seq {
		return &store.ChainError{Seq: c.Seq, Kind: store.ChainBadCheckpoint,
			Message: fmt.Sprintf("the note of the checkpoint at %d is of tree size %d", c.Seq, n.Size)}
	}
	return nil
}

// noteSigners names the keys a signed note's signature lines claim (name
// and key hash), for messages.
func noteSigners(msg []byte) string {
	i := bytes.LastIndex(msg, []byte("\n\n"))
	if i < 0 {
		return "no signature lines"
	}
	var names []string
	for _, line := range strings.Split(strings.TrimSuffix(string(msg[i+2:]), "\n"), "\n") {
		name, sig, ok := strings.Cut(strings.TrimPrefix(line, "\u2014 "), " ")
		raw, err := base64.StdEncoding.DecodeString(sig)
		if !ok || err != nil || len(raw) < 4 {
			continue
		}
		names = append(names, fmt.Sprintf("%s+%08x", name, binary.BigEndian.Uint32(raw)))
	}
	if len(names) == 0 {
		return "no readable signature lines"
	}
	return "it is signed by " + strings.Join(names, ", ")
}

// keyID is a verifier key's name+hash, without the key itself.
func keyID(vkey string) string {
	name, rest, _ := strings.Cut(vkey, "+")
	hash, _, _ := strings.Cut(rest, "+")
	return name + "+" + hash
}
