// Package faultguard runs work outside a gRPC call's recovery (background
// loops, worker goroutines) so that damage in a memory-mapped database
// file fails that work instead of ending the process.
package faultguard

import (
	"context"
	"fmt"
	"log/slog"
	"runtime/debug"

	"github.com/signerd/signerd/internal/errdefs"
)

// Run runs fn with faults in memory-mapped files (bbolt's map of a file
// truncated or damaged under it) turned into panics, and recovers any
// panic (bbolt's own on a page it cannot parse, or a bug): it is logged
// with its stack and returned as an ErrInternal naming what failed. The
// server's interceptors do the same for calls.
func Run(ctx context.Context, log *slog.Logger, what string, fn func() error) (err error) {
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		if r := recover(); r != nil {
			log.ErrorContext(ctx, what+" failed: panic (a damaged database file?)", "panic", r, "stack", string(debug.Stack()))
			err = fmt.Errorf("%s: %v (a damaged database file?): %w", what, r, errdefs.ErrInternal)
		}
	}()
	return fn()
}
