package service

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"os"
	"strings"

	"golang.org/x/mod/sumdb/note"

	"github.com/signerd/signerd/internal/auditlog"
	"github.com/signerd/signerd/internal/errdefs"
	"github.com/signerd/signerd/internal/keystore"
	"github.com/signerd/signerd/internal/store"
)

// LogKeyName is the reserved name of the transparency log's key: an
// Ed25519 key pair generated in the HSM, recorded apart from the signing
// keys (store.SetLogKey), used only to sign checkpoint notes
// (auditlog/note.go). Like the audit key, no user can create, import or
// sign with a key of this name: a signature by it over chosen bytes would
// be a forged checkpoint.
//
// Unlike the audit key, the log key is not part of the state digest
// (store.StateDigest keeps its version 1 encoding, so every checkpoint
// signed so far still vouches for the state): a log key record replaced
// behind the daemon's back changes the verifier key, which every note
// verifier holding the old one notices at the next checkpoint.
const LogKeyName = "signerd-log"

// DefaultLogOrigin is the origin (and note key name) a deployment uses
// unless configured: "signerd.<host name>/log". Replicas sharing one
// store and one tree should be configured with one origin.
func DefaultLogOrigin() string {
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "localhost"
	}
	host = strings.Map(func(r rune) rune {
		if r == '+' || r == ' ' || r < 0x21 || r == 0x7f {
			return '-'
		}
		return r
	}, host)
	return "signerd." + host + "/log"
}

// logKeyState is the log key once EnsureLogKey has loaded it; guarded by
// auditKeyState.mu.
type logKeyState struct {
	key    store.Key
	signer note.Signer
	vkey   string
	// note is the newest checkpoint note known (nil: none yet).
	note []byte
	// off says why there is no log key on this token (it offers no
	// CKM_EDDSA): checkpoints are then written without a note and the
	// log's checkpoint and key answer FAILED_PRECONDITION with it.
	off error
}

// EnsureLogKey loads the log key, creating it in the HSM (audited as
// "log.key.create") the first time, and makes the note signer for the
// configured origin. EnsureAuditKey calls it, so the daemon has both keys
// before it serves.
func (s *Service) EnsureLogKey(ctx context.Context) (store.Key, error) {
	ctx = WithCaller(ctx, Caller{ID: daemonCaller})
	k, err := s.store.LogKey(ctx)
	if errors.Is(err, errdefs.ErrNotFound) {
		k, err = s.createLogKey(ctx)
		if errors.Is(err, errdefs.ErrAlreadyExists) {
			// Another replica recorded its log key first: that one is
			// the log key (ours stays unused).
			k, err = s.store.LogKey(ctx)
		}
	}
	if err != nil {
		return store.Key{}, fmt.Errorf("log key: %w", err)
	}
	ver, ok := k.Current()
	if !ok || keystore.Algorithm(k.Algorithm) != keystore.Ed25519 {
		return store.Key{}, fmt.Errorf("the recorded log key is not an active ed25519 key: %w", errdefs.ErrFailedPrecondition)
	}
	pub, err := ParsePublicKeyDER(ver.PublicKey)
	if err != nil {
		return store.Key{}, fmt.Errorf("log key: recorded public key: %w", err)
	}
	signer, err := s.keys.Signer(ctx, keystore.KeyRef{ID: ver.CKAID, Algorithm: keystore.Ed25519, Public: pub})
	if err != nil {
		return store.Key{}, fmt.Errorf("log key %s (fingerprint %s): %w", k.Name, ver.Fingerprint, err)
	}
	edPub, ok := signer.Public().(ed25519.PublicKey)
	if !ok {
		return store.Key{}, fmt.Errorf("log key: HSM returned a %T public key: %w", signer.Public(), errdefs.ErrInternal)
	}
	ns, err := auditlog.NewNoteSigner(s.origin, signer)
	if err != nil {
		return store.Key{}, err
	}
	vkey, err := auditlog.VerifierKey(s.origin, edPub)
	if err != nil {
		return store.Key{}, err
	}
	a := &s.audit
	a.mu.Lock()
	a.log.key, a.log.signer, a.log.vkey = k, ns, vkey
	if len(a.last.Note) > 0 {
		a.log.note = a.last.Note
	}
	a.mu.Unlock()
	return k, nil
}

func (s *Service) createLogKey(ctx context.Context) (store.Key, error) {
	v, err := s.newVersion(ctx, LogKeyName, 1, keystore.Ed25519)
	if err != nil {
		return store.Key{}, err
	}
	k := store.Key{Name: LogKeyName, Algorithm: string(keystore.Ed25519), CreatedAt: v.CreatedAt, Versions: []store.KeyVersion{v}}
	ev := s.event(ctx, "log.key.create")
	ev.Key, ev.Detail = LogKeyName, fmt.Sprintf("algorithm=%s version=1 fingerprint=%s", keystore.Ed25519, v.Fingerprint)
	if err := s.store.SetLogKey(ctx, k, ev); err != nil {
		s.log.WarnContext(ctx, "log key pair created in the HSM but not recorded; it is unused",
			"cka_id", fmt.Sprintf("%x", v.CKAID), "err", err)
		return store.Key{}, err
	}
	s.log.InfoContext(ctx, "log key created", "fingerprint", v.Fingerprint)
	return k, nil
}

// logSigner returns the note signer, or ErrFailedPrecondition before
// EnsureLogKey.
func (s *Service) logSigner() (note.Signer, error) {
	a := &s.audit
	a.mu.RLock()
	defer a.mu.RUnlock()
	if a.log.off != nil {
		return nil, a.log.off
	}
	if a.log.signer == nil {
		return nil, fmt.Errorf("the log key is not loaded: %w", errdefs.ErrFailedPrecondition)
	}
	return a.log.signer, nil
}

// LogVerifierKey returns the note verifier key of the log
// ("<origin>+<hex key hash>+<base64(0x01 ‖ public key)>"): what
// `signctl log public-key` prints and any note verifier reads.
func (s *Service) LogVerifierKey(ctx context.Context) (string, error) {
	if err := ctx.Err(); err != nil {
		return "", err
	}
	a := &s.audit
	a.mu.RLock()
	defer a.mu.RUnlock()
	if a.log.off != nil {
		return "", a.log.off
	}
	if a.log.vkey == "" {
		return "", fmt.Errorf("the log key is not loaded: %w", errdefs.ErrFailedPrecondition)
	}
	return a.log.vkey, nil
}

// LogCheckpoint returns the newest checkpoint note (a C2SP tlog-checkpoint
// signed by the log key). ErrNotFound before the first: Checkpoint writes
// one whenever the log has grown.
func (s *Service) LogCheckpoint(ctx context.Context) ([]byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	a := &s.audit
	a.mu.RLock()
	n, off := a.log.note, a.log.off
	a.mu.RUnlock()
	if off != nil {
		return nil, off
	}
	if n != nil {
		return n, nil
	}
	// Not known in this process (a replica wrote it, or it predates the
	// start): the newest recorded one with a note.
	cps, err := s.store.ListCheckpoints(ctx)
	if err != nil {
		return nil, err
	}
	for i := len(cps) - 1; i >= 0; i-- {
		if len(cps[i].Note) > 0 {
			return cps[i].Note, nil
		}
	}
	return nil, fmt.Errorf("no checkpoint note yet (one is written at the next checkpoint after the log grows): %w", errdefs.ErrNotFound)
}

// signNote returns the checkpoint note of the first seq leaves vouching
// for state, signed in the HSM by the log key.
func (s *Service) signNote(ctx context.Context, seq uint64, state []byte) ([]byte, error) {
	signer, err := s.logSigner()
	if errors.Is(err, keystore.ErrMechanismMissing) {
		return nil, nil // no log key on this token: the ECDSA checkpoint alone
	}
	if err != nil {
		return nil, err
	}
	root, err := s.store.LogRoot(ctx, seq)
	if err != nil {
		return nil, fmt.Errorf("log root of %d leaves: %w", seq, err)
	}
	release, err := s.acquireHSM(ctx)
	if err != nil {
		return nil, err
	}
	defer release()
	return auditlog.SignCheckpointNote(signer, seq, root, state)
}

// logUnavailable records that this token cannot hold the log key (it
// offers no CKM_EDDSA, as p11-kit 0.24's remoting does not carry it): the
// daemon serves, its audit chain and ECDSA checkpoints are whole, and
// only the signed notes are missing, which the log's RPCs say.
func (s *Service) logUnavailable(ctx context.Context, cause error) {
	a := &s.audit
	a.mu.Lock()
	a.log.off = fmt.Errorf("no transparency-log checkpoints on this HSM: its log key is Ed25519 (C2SP signed notes) and %w", cause)
	a.mu.Unlock()
	s.log.WarnContext(ctx, "transparency-log checkpoints are off: this HSM cannot hold the Ed25519 log key; the audit chain, its ECDSA checkpoints and the Merkle tree are kept, but no signed note is written and `signctl log checkpoint` is refused",
		"err", cause)
}
