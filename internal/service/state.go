package service

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"

	"github.com/signerd/signerd/internal/auditlog"
	"github.com/signerd/signerd/internal/errdefs"
	"github.com/signerd/signerd/internal/store"
)

// StateCheck is what VerifyStateAtStart found and did.
type StateCheck struct {
	auditlog.StateReport
	// Baseline: no checkpoint vouched for the state yet (a database from
	// before state digests); it was recorded and checkpointed.
	Baseline bool
	// Accepted: the state was unexplained and the operator accepted it.
	Accepted bool
}

// VerifyStateAtStart checks, before the daemon serves, that the security
// state in the store (trust, grants, policy, key states) is the one the
// audit log vouches for, and brings the checkpoints up to date:
//
//   - the state matches the newest checkpoint's state digest: nothing to do;
//   - it differs, and audit records after that checkpoint change it (the
//     daemon stopped before its next checkpoint): a checkpoint is signed
//     now (those records are vouched for by the chain alone, as every
//     record after the newest checkpoint is);
//   - no checkpoint carries a state digest yet (a database from before
//     them): an audit.state.baseline record and a checkpoint over it;
//   - otherwise (no record explains the state, the newest checkpoint does
//     not verify, or the checkpoints that vouched for the state are gone):
//     an error wrapping errdefs.ErrFailedPrecondition that names the
//     state's digest, unless accept is that digest (hex): then an
//     audit.state.accept record and a checkpoint over it.
//
// Accepting takes the digest, not a yes/no, so that an acceptance left in a
// config file never accepts a later, different state.
func (s *Service) VerifyStateAtStart(ctx context.Context, accept string) (StateCheck, error) {
	ctx = WithCaller(ctx, Caller{ID: daemonCaller})
	_, _, _, pub, err := s.auditKey()
	if err != nil {
		return StateCheck{}, err
	}
	var (
		chk     StateCheck
		problem *store.ChainError
		latest  *store.Checkpoint
	)
	cps, err := s.store.ListCheckpoints(ctx)
	switch {
	case errors.As(err, &problem):
	case err != nil:
		return chk, err
	case len(cps) > 0:
		newest := cps[len(cps)-1]
		if err := auditlog.VerifyCheckpoint(pub, newest); err != nil {
			errors.As(err, &problem)
		} else {
			latest = &newest
		}
	}
	rep, err := auditlog.CheckState(ctx, s.store, latest)
	chk.StateReport = rep
	if err != nil && !errors.As(err, &problem) {
		return chk, err
	}
	digest := hex.EncodeToString(rep.Digest)
	switch {
	case problem != nil && accept != digest:
		hint := fmt.Sprintf("if this state is yours, start signerd once with --accept-state %s (the acceptance is audited)", digest)
		if accept != "" {
			hint = fmt.Sprintf("--accept-state %s names another state; this one is %s", accept, digest)
		}
		return chk, fmt.Errorf("refusing to serve a security state the audit log does not vouch for: %s; %s: %w",
			problem.Error(), hint, errdefs.ErrFailedPrecondition)
	case problem != nil:
		ev := s.event(ctx, store.OpStateAccept)
		ev.Detail = fmt.Sprintf("state_digest=%s vouched=%s at=%d problem=%s", digest, hex.EncodeToString(rep.VouchedDigest), rep.VouchedAt, problem.Kind)
		if _, err := s.store.AppendAudit(ctx, ev); err != nil {
			return chk, fmt.Errorf("record the accepted state: %w", err)
		}
		s.log.WarnContext(ctx, "security state accepted by the operator (--accept-state)", "state_digest", digest, "problem", problem.Error())
		chk.Accepted = true
	case rep.Matches():
		return chk, nil
	case rep.VouchedAt == 0:
		ev := s.event(ctx, store.OpStateBaseline)
		ev.Detail = "state_digest=" + digest
		if _, err := s.store.AppendAudit(ctx, ev); err != nil {
			return chk, fmt.Errorf("record the state baseline: %w", err)
		}
		s.log.InfoContext(ctx, "no checkpoint vouched for the security state yet; from now on every checkpoint does", "state_digest", digest)
		chk.Baseline = true
	default:
		s.log.WarnContext(ctx, "security state changed after the newest checkpoint by recorded operations; vouching for it now",
			"checkpoint_seq", rep.VouchedAt, "changes", rep.ChangesAfter, "state_digest", digest)
	}
	if _, _, err := s.Checkpoint(ctx); err != nil {
		// Damage elsewhere in the log (audit verify names it) stops
		// checkpoints, not start-up, as before state digests; the state
		// is then recorded and vouched for by the chain alone.
		s.log.ErrorContext(ctx, "could not checkpoint the security state at start", "err", err)
	}
	return chk, nil
}

// RecordJournalLoss records that the operator started signerd although
// its database was not closed cleanly and its journal was missing or
// truncated (--accept-journal-loss): whoever reads the log learns that
// records acknowledged before this one may be missing.
func (s *Service) RecordJournalLoss(ctx context.Context, detail string) error {
	ev := s.event(ctx, store.OpJournalLoss)
	ev.Detail = detail
	if _, err := s.store.AppendAudit(ctx, ev); err != nil {
		return fmt.Errorf("record the accepted journal loss: %w", err)
	}
	s.log.ErrorContext(ctx, "journal loss accepted by the operator (--accept-journal-loss) and recorded in the audit log", "detail", detail)
	return nil
}
