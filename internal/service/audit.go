package service

import "context"

// RecordDenial appends an audit record for a call that was refused
// authorization. Failure to record is logged, not returned: the call is
// refused either way.
func (s *Service) RecordDenial(ctx context.Context, operation, detail string) {
	ev := s.event(ctx, operation)
	ev.Outcome, ev.Detail = "denied", detail
	if _, err := s.store.AppendAudit(ctx, ev); err != nil {
		s.log.ErrorContext(ctx, "audit append failed for a denied call", "operation", operation, "err", err)
	}
}
