package service

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/signerd/signerd/internal/auditlog"
	"github.com/signerd/signerd/internal/errdefs"
	"github.com/signerd/signerd/internal/faultguard"
	"github.com/signerd/signerd/internal/keystore"
	"github.com/signerd/signerd/internal/store"
)

// AuditKeyName is the reserved name of the audit checkpoint key: an ECDSA
// P-256 key pair generated in the HSM like every signing key, recorded
// apart from them (store.SetAuditKey), and used only to sign audit
// checkpoints. No user can create, import or sign with a key of this name
// (ValidateKeyName refuses it).
const AuditKeyName = "signerd-audit"

// Audit list paging: a page is bounded so one call cannot pull the whole log
// into memory.
const (
	DefaultAuditPage = 1000
	MaxAuditPage     = 1000
)

// daemonCaller is the identity of the daemon's own acts in the audit log.
const daemonCaller = "signerd"

// auditKeyState is the audit key once EnsureAuditKey has loaded it.
type auditKeyState struct {
	// write serializes checkpoint writers (the periodic one and the one at
	// shutdown); it is held across the HSM call and the store write.
	write sync.Mutex
	mu    sync.RWMutex
	key   store.Key
	ver   store.KeyVersion
	// signer is the HSM signer of ver; pub is its public key as the token
	// reports it (checked against the recorded one by the key store).
	signer crypto.Signer
	pub    *ecdsa.PublicKey
	// last is the newest checkpoint known to be good (Seq 0: none).
	last store.Checkpoint
	// log is the transparency log's note key (logkey.go).
	log logKeyState
}

// RecordDenial appends an audit record for a call that was refused
// authorization. Failure to record is logged, not returned: the call is
// refused either way.
func (s *Service) RecordDenial(ctx context.Context, operation, detail string) {
	ev := s.event(ctx, operation)
	ev.Outcome, ev.Detail = "denied", detail
	s.auditRefusal(ctx, ev)
}

// auditTimeout bounds the write of a refusal's audit record.
const auditTimeout = 5 * time.Second

// maxAuditField bounds each free-text field of an audit record. Refusals
// quote what the caller sent (key names, edited metadata); without a bound
// any caller allowed to verify could write megabyte records and log lines.
const maxAuditField = 1024

// clipEvent bounds the free-text fields and makes them printable, so that
// audit records can be shown on a terminal without carrying escape
// sequences a caller chose.
func clipEvent(ev store.AuditEvent) store.AuditEvent {
	ev.Caller, ev.Key, ev.Org = clipField(ev.Caller), clipField(ev.Key), clipField(ev.Org)
	ev.Digest, ev.Outcome, ev.Detail = clipField(ev.Digest), clipField(ev.Outcome), clipField(ev.Detail)
	return ev
}

func clipField(s string) string {
	clean := strings.Map(func(r rune) rune {
		if r == utf8.RuneError || unicode.IsControl(r) {
			return '?'
		}
		return r
	}, s)
	if len(clean) <= maxAuditField {
		return clean
	}
	cut := maxAuditField
	for cut > 0 && !utf8.RuneStart(clean[cut]) {
		cut--
	}
	return clean[:cut] + fmt.Sprintf("…[%d bytes cut]", len(clean)-cut)
}

// EnsureAuditKey loads the audit checkpoint key, creating it in the HSM
// (audited as "audit.key.create") the first time. The key store checks the
// token's public key against the recorded one, so a replaced record or
// token object stops start-up (KEY_MISMATCH) rather than signing
// checkpoints with a key verifiers do not know. The daemon calls it once,
// before serving.
func (s *Service) EnsureAuditKey(ctx context.Context) (store.Key, error) {
	ctx = WithCaller(ctx, Caller{ID: daemonCaller})
	k, err := s.store.AuditKey(ctx)
	if errors.Is(err, errdefs.ErrNotFound) {
		k, err = s.createAuditKey(ctx)
		if errors.Is(err, errdefs.ErrAlreadyExists) {
			// Another replica on the same store recorded its audit key
			// first: that one is the audit key (ours stays unused).
			k, err = s.store.AuditKey(ctx)
		}
	}
	if err != nil {
		return store.Key{}, fmt.Errorf("audit key: %w", err)
	}
	ver, ok := k.Current()
	if !ok || keystore.Algorithm(k.Algorithm) != keystore.ECDSAP256 {
		return store.Key{}, fmt.Errorf("the recorded audit key is not an active ecdsa-p256 key: %w", errdefs.ErrFailedPrecondition)
	}
	pub, err := ParsePublicKeyDER(ver.PublicKey)
	if err != nil {
		return store.Key{}, fmt.Errorf("audit key: recorded public key: %w", err)
	}
	signer, err := s.keys.Signer(ctx, keystore.KeyRef{ID: ver.CKAID, Algorithm: keystore.ECDSAP256, Public: pub})
	if err != nil {
		return store.Key{}, fmt.Errorf("audit key %s (fingerprint %s): %w", k.Name, ver.Fingerprint, err)
	}
	ecPub, ok := signer.Public().(*ecdsa.PublicKey)
	if !ok {
		return store.Key{}, fmt.Errorf("audit key: HSM returned a %T public key: %w", signer.Public(), errdefs.ErrInternal)
	}

	var last store.Checkpoint
	cps, err := s.store.ListCheckpoints(ctx)
	switch {
	case err != nil:
		// Damage for audit verify to name; the next checkpoint is then
		// signed only after the whole chain is checked from its start.
		s.log.ErrorContext(ctx, "audit checkpoints are unreadable; run signctl audit verify", "err", err)
	case len(cps) > 0:
		last = cps[len(cps)-1]
		if err := auditlog.VerifyCheckpoint(ecPub, last); err != nil {
			s.log.ErrorContext(ctx, "the newest audit checkpoint does not verify; run signctl audit verify", "err", err)
			last = store.Checkpoint{}
		}
	}

	a := &s.audit
	a.mu.Lock()
	a.key, a.ver, a.signer, a.pub, a.last = k, ver, signer, ecPub, last
	a.mu.Unlock()
	// Checkpoints are written with both keys (auditlog/note.go), so the
	// log key is loaded (or created) with the audit key.
	if _, err := s.EnsureLogKey(ctx); errors.Is(err, keystore.ErrMechanismMissing) {
		s.logUnavailable(ctx, err)
	} else if err != nil {
		return store.Key{}, err
	}
	return k, nil
}

func (s *Service) createAuditKey(ctx context.Context) (store.Key, error) {
	v, err := s.newVersion(ctx, AuditKeyName, 1, keystore.ECDSAP256)
	if err != nil {
		return store.Key{}, err
	}
	k := store.Key{Name: AuditKeyName, Algorithm: string(keystore.ECDSAP256), CreatedAt: v.CreatedAt, Versions: []store.KeyVersion{v}}
	ev := s.event(ctx, "audit.key.create")
	ev.Key, ev.Detail = AuditKeyName, fmt.Sprintf("algorithm=%s version=1 fingerprint=%s", keystore.ECDSAP256, v.Fingerprint)
	if err := s.store.SetAuditKey(ctx, k, ev); err != nil {
		s.log.WarnContext(ctx, "audit key pair created in the HSM but not recorded; it is unused",
			"cka_id", fmt.Sprintf("%x", v.CKAID), "err", err)
		return store.Key{}, err
	}
	s.log.InfoContext(ctx, "audit key created", "fingerprint", v.Fingerprint)
	return k, nil
}

// auditKey returns the loaded audit key, or ErrFailedPrecondition before
// EnsureAuditKey.
func (s *Service) auditKey() (store.Key, store.KeyVersion, crypto.Signer, *ecdsa.PublicKey, error) {
	a := &s.audit
	a.mu.RLock()
	defer a.mu.RUnlock()
	if a.signer == nil {
		return store.Key{}, store.KeyVersion{}, nil, nil, fmt.Errorf("the audit key is not loaded: %w", errdefs.ErrFailedPrecondition)
	}
	return a.key, a.ver, a.signer, a.pub, nil
}

// Checkpoint signs the audit log's current head with the audit key in the
// HSM and records it, if the head moved since the last checkpoint. It
// returns the newest checkpoint and whether it wrote one.
//
// Before signing it checks that the records since the previous checkpoint
// continue the chain from that checkpoint's hash to the head, so a
// checkpoint never vouches for a log that was damaged meanwhile (e.g. while
// the daemon was stopped); such damage is returned and logged, and no
// checkpoint is written until it is resolved.
func (s *Service) Checkpoint(ctx context.Context) (cp store.Checkpoint, wrote bool, err error) {
	// The periodic and final checkpoints run where no call's recovery
	// does: damage in a bbolt file they read fails the checkpoint (logged,
	// retried at the next interval) instead of ending the process.
	err = faultguard.Run(ctx, s.log, "audit checkpoint", func() error {
		var err error
		cp, wrote, err = s.checkpoint(ctx)
		return err
	})
	return cp, wrote, err
}

func (s *Service) checkpoint(ctx context.Context) (store.Checkpoint, bool, error) {
	_, ver, signer, pub, err := s.auditKey()
	if err != nil {
		return store.Checkpoint{}, false, err
	}
	a := &s.audit
	a.write.Lock()
	defer a.write.Unlock()
	a.mu.RLock()
	last := a.last
	a.mu.RUnlock()

	seq, hash, state, err := s.headAndState(ctx)
	if err != nil {
		return last, false, err
	}
	if seq == 0 || (seq == last.Seq && bytes.Equal(hash, last.Hash)) {
		if seq > 0 && len(last.StateDigest) > 0 && !bytes.Equal(state, last.StateDigest) {
			return last, false, s.damaged(ctx, &store.ChainError{Seq: seq, Kind: store.ChainStateUnexplained,
				Message: "the security state changed without an audit record since the newest checkpoint"})
		}
		return last, false, nil
	}
	changes, err := s.checkExtends(ctx, last, seq, hash)
	if err != nil {
		return last, false, err
	}
	// A checkpoint never vouches for a state change its log does not
	// record: one written into the store behind the daemon's back (on
	// etcd, while it runs) stops checkpoints until it is resolved.
	if len(last.StateDigest) > 0 && !bytes.Equal(state, last.StateDigest) && changes == 0 {
		return last, false, s.damaged(ctx, &store.ChainError{Seq: last.Seq, Kind: store.ChainStateUnexplained,
			Message: fmt.Sprintf("the security state changed after the checkpoint at record %d, but no audit record since changes it", last.Seq)})
	}
	cp, err := func() (store.Checkpoint, error) {
		release, err := s.acquireHSM(ctx)
		if err != nil {
			return store.Checkpoint{}, err
		}
		defer release()
		return auditlog.SignCheckpoint(signer, store.Checkpoint{Seq: seq, Hash: hash, Time: s.now(), KeyFingerprint: ver.Fingerprint, StateDigest: state})
	}()
	if err != nil {
		return last, false, err
	}
	if err := auditlog.VerifyCheckpoint(pub, cp); err != nil {
		// The recorded fingerprint and the token's key disagree.
		return last, false, fmt.Errorf("audit checkpoint: %v: %w", err, errdefs.ErrInternal)
	}
	// The same checkpoint as a signed note over the tree, for note
	// verifiers and witnesses; it vouches for the same state.
	if cp.Note, err = s.signNote(ctx, seq, state); err != nil {
		return last, false, fmt.Errorf("checkpoint note: %w", err)
	}
	err = s.store.PutCheckpoint(ctx, cp)
	if errors.Is(err, errdefs.ErrAlreadyExists) {
		// Written before a restart: that one stands.
		cp, err = store.Checkpoint{Seq: seq, Hash: hash, StateDigest: state}, nil
		s.setLast(cp)
		return cp, false, nil
	}
	if errors.Is(err, errdefs.ErrFailedPrecondition) {
		// Several replicas on one store: another one may have signed a
		// newer head meanwhile. That one stands if it verifies.
		if cps, lerr := s.store.ListCheckpoints(ctx); lerr == nil && len(cps) > 0 {
			if newest := cps[len(cps)-1]; newest.Seq > seq && auditlog.VerifyCheckpoint(pub, newest) == nil {
				s.setLast(newest)
				return newest, false, nil
			}
		}
	}
	if err != nil {
		return last, false, fmt.Errorf("record audit checkpoint: %w", err)
	}
	s.setLast(cp)
	s.log.DebugContext(ctx, "audit checkpoint signed", "seq", cp.Seq, "hash", fmt.Sprintf("%x", cp.Hash))
	return cp, true, nil
}

func (s *Service) setLast(c store.Checkpoint) {
	s.audit.mu.Lock()
	s.audit.last = c
	if len(c.Note) > 0 {
		s.audit.log.note = c.Note
	}
	s.audit.mu.Unlock()
}

// checkExtends checks that the records after last (from the start of the
// log if last.Seq is 0) form a chain ending at head seq with hash head, and
// counts those that change the security state.
func (s *Service) checkExtends(ctx context.Context, last store.Checkpoint, seq uint64, head []byte) (stateChanges int, err error) {
	const chunk = 1024
	prevSeq, prevHash := uint64(0), store.GenesisHash()
	if last.Seq > 0 {
		recs, err := s.store.ListAudit(ctx, last.Seq-1, 1)
		if err != nil {
			return 0, err
		}
		if len(recs) != 1 || recs[0].Seq != last.Seq || !bytes.Equal(recs[0].Hash, last.Hash) {
			return 0, s.damaged(ctx, &store.ChainError{Seq: last.Seq, Kind: store.ChainEdited,
				Message: "the record at the newest checkpoint no longer matches it"})
		}
		prevSeq, prevHash = last.Seq, last.Hash
	}
	for prevSeq < seq {
		recs, err := s.store.ListAudit(ctx, prevSeq, chunk)
		if err != nil {
			return 0, err
		}
		if n := seq - prevSeq; uint64(len(recs)) > n {
			recs = recs[:n]
		}
		if len(recs) == 0 {
			return 0, s.damaged(ctx, &store.ChainError{Seq: prevSeq + 1, Kind: store.ChainDeleted,
				Message: fmt.Sprintf("the log ends at %d but its head records %d", prevSeq, seq)})
		}
		if err := store.VerifyAuditChain(recs, prevHash, prevSeq); err != nil {
			return 0, s.damaged(ctx, err)
		}
		for _, r := range recs {
			if store.ChangesState(r) {
				stateChanges++
			}
		}
		prevSeq, prevHash = recs[len(recs)-1].Seq, recs[len(recs)-1].Hash
	}
	if !bytes.Equal(prevHash, head) {
		return 0, s.damaged(ctx, &store.ChainError{Seq: seq, Kind: store.ChainEdited, Message: "the last record's hash differs from the recorded head"})
	}
	return stateChanges, nil
}

// headAndState reads the audit head and the digest of the security state
// as of that head. Every state change appends an audit record in the same
// transaction, so a head that did not move while the state was read means
// the state is the one after record seq.
func (s *Service) headAndState(ctx context.Context) (seq uint64, hash, state []byte, err error) {
	for range 5 {
		seq, hash, err = s.store.AuditHead(ctx)
		if err != nil {
			return 0, nil, nil, err
		}
		if state, err = store.StateDigest(ctx, s.store); err != nil {
			return 0, nil, nil, err
		}
		seq2, hash2, err := s.store.AuditHead(ctx)
		if err != nil {
			return 0, nil, nil, err
		}
		if seq2 == seq && bytes.Equal(hash2, hash) {
			return seq, hash, state, nil
		}
	}
	return 0, nil, nil, fmt.Errorf("the audit head kept moving while the security state was read; the next checkpoint will try again: %w", errdefs.ErrUnavailable)
}

func (s *Service) damaged(ctx context.Context, err error) error {
	s.log.ErrorContext(ctx, "audit log damaged: not signing a checkpoint over it; run signctl audit verify", "err", err)
	return fmt.Errorf("audit checkpoint refused: %w", err)
}

// RunCheckpoints writes a checkpoint every interval, when the head moved,
// until ctx ends. Failures are logged and retried at the next tick. An
// interval of 0 or less disables periodic checkpoints.
func (s *Service) RunCheckpoints(ctx context.Context, interval time.Duration) {
	if interval <= 0 {
		return
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if _, _, err := s.Checkpoint(ctx); err != nil && ctx.Err() == nil {
				s.log.ErrorContext(ctx, "audit checkpoint failed", "err", err)
			}
		}
	}
}

// AuditPage is one page of the audit log.
type AuditPage struct {
	Records []store.AuditRecord
	// HeadSeq is the recorded head when the page was read.
	HeadSeq uint64
}

// ListAudit returns records with Seq > since, at most limit (0:
// DefaultAuditPage; capped at MaxAuditPage).
func (s *Service) ListAudit(ctx context.Context, since uint64, limit int) (AuditPage, error) {
	if limit < 0 {
		return AuditPage{}, fmt.Errorf("limit %d is negative: %w", limit, errdefs.ErrInvalidArgument)
	}
	if limit == 0 || limit > MaxAuditPage {
		limit = DefaultAuditPage
	}
	head, _, err := s.store.AuditHead(ctx)
	if err != nil {
		return AuditPage{}, err
	}
	recs, err := s.store.ListAudit(ctx, since, limit)
	if err != nil {
		return AuditPage{}, err
	}
	return AuditPage{Records: recs, HeadSeq: head}, nil
}

// VerifyAudit checks the whole audit log and its checkpoints with the audit
// key as the HSM holds it (auditlog.Verify). Damage is a *store.ChainError
// naming the first bad record; the report is filled as far as it got.
func (s *Service) VerifyAudit(ctx context.Context) (auditlog.Report, error) {
	_, _, _, pub, err := s.auditKey()
	if err != nil {
		return auditlog.Report{}, err
	}
	rep, err := auditlog.Verify(ctx, s.store, pub)
	if err == nil {
		// Online the log key is at hand too: every note must be its.
		err = s.verifyNotes(ctx)
	}
	var ce *store.ChainError
	if errors.As(err, &ce) {
		s.log.ErrorContext(ctx, "audit log verification failed", "seq", ce.Seq, "kind", ce.Kind, "err", err)
	}
	return rep, err
}

// verifyNotes checks every checkpoint note's signature with the log key
// (auditlog.Verify, which also runs offline, checks their roots).
func (s *Service) verifyNotes(ctx context.Context) error {
	vkey, offErr := s.LogVerifierKey(ctx)
	off := errors.Is(offErr, keystore.ErrMechanismMissing)
	if offErr != nil && !off {
		return offErr
	}
	cps, err := s.store.ListCheckpoints(ctx)
	if err != nil {
		return err
	}
	for _, c := range cps {
		if off {
			// A token without the log key writes no notes; a note here
			// was signed elsewhere and cannot be checked on this one.
			if len(c.Note) > 0 {
				return fmt.Errorf("the checkpoint at %d has a note this daemon cannot check: %w", c.Seq, offErr)
			}
			continue
		}
		if err := auditlog.VerifyCheckpointNote(vkey, c); err != nil {
			return err
		}
	}
	return nil
}

// AuditPublicKey returns the audit key and its current version (whose
// PublicKey is the SPKI DER that verifies checkpoints).
func (s *Service) AuditPublicKey(ctx context.Context) (store.Key, store.KeyVersion, error) {
	if k, ver, _, _, err := s.auditKey(); err == nil {
		return k, ver, nil
	}
	k, err := s.store.AuditKey(ctx)
	if err != nil {
		return store.Key{}, store.KeyVersion{}, err
	}
	ver, ok := k.Current()
	if !ok {
		return store.Key{}, store.KeyVersion{}, fmt.Errorf("the audit key has no active version: %w", errdefs.ErrFailedPrecondition)
	}
	return k, ver, nil
}
