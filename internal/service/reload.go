package service

import (
	"context"
	"fmt"
)

// ReloadOperation is the audit operation of a configuration reload
// (SIGHUP): its outcome is "ok" or "refused", its detail says what was
// read and, when refused, why.
const ReloadOperation = "daemon.reload"

// RecordReload appends the audit record of a reload attempt, by the daemon
// itself. Unlike a refused call's record, its failure is returned: the
// daemon logs it, since an operator changing the policy must learn that the
// change went unrecorded.
func (s *Service) RecordReload(ctx context.Context, outcome, detail string) error {
	ev := s.event(ctx, ReloadOperation)
	ev.Caller, ev.Outcome, ev.Detail = daemonCaller, outcome, detail
	if _, err := s.store.AppendAudit(ctx, clipEvent(ev)); err != nil {
		return fmt.Errorf("audit record of the reload: %w", err)
	}
	return nil
}

// StartOperation is the audit operation of a start: its detail names the
// authorization in force (the policy file and its SHA-256, or the default
// rule), so that who may do what is in the log from the first call on,
// and a policy edited while signerd was stopped shows.
const StartOperation = "daemon.start"

// RecordStart appends the audit record of a start, by the daemon itself.
func (s *Service) RecordStart(ctx context.Context, detail string) error {
	ev := s.event(ctx, StartOperation)
	ev.Caller, ev.Outcome, ev.Detail = daemonCaller, "ok", detail
	if _, err := s.store.AppendAudit(ctx, clipEvent(ev)); err != nil {
		return fmt.Errorf("audit record of the start: %w", err)
	}
	return nil
}
