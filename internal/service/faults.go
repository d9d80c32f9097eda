package service

import (
	"fmt"
	"runtime/debug"

	"github.com/signerd/signerd/internal/errdefs"
)

// guardFaults runs fn so that a fault in a memory-mapped database file
// (bbolt's map of a file truncated or damaged under it) or bbolt's panic on
// a page it cannot parse fails fn with ErrInternal, logged with its stack,
// instead of ending the process. The server's interceptor does the same
// for calls; this is for work no call runs (the periodic and the final
// audit checkpoint).
func (s *Service) guardFaults(what string, fn func() error) (err error) {
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		if r := recover(); r != nil {
			s.log.Error(what+" failed: panic (a damaged database file?)", "panic", r, "stack", string(debug.Stack()))
			err = fmt.Errorf("%s: %v (a damaged database file?): %w", what, r, errdefs.ErrInternal)
		}
	}()
	return fn()
}
