package supervised

import (
	"context"
	"errors"
	"log/slog"
	"math/rand/v2"
	"time"

	"github.com/signerd/signerd/internal/errdefs"
)

// warnEvery bounds how often an unchanged reconnect failure is logged at
// warning level (every attempt is logged at debug level).
const warnEvery = 30 * time.Second

// run is the supervision loop: it checks the token every PingInterval while
// it is up, closes broken stores and opens the token again while it is down.
// It is the only goroutine that opens underlying stores after Open, and it
// starts the closing of broken ones (Close aside, once it has stopped).
func (s *KeyStore) run() {
	defer close(s.done)
	var tick <-chan time.Time
	if s.opts.PingInterval > 0 {
		t := time.NewTicker(s.opts.PingInterval)
		defer t.Stop()
		tick = t.C
	}
	for {
		select {
		case <-s.stop:
			return
		case <-s.wake:
		case <-tick:
			s.pingOnce()
		}
		s.closeRetired()
		if s.needsReopen() {
			s.reopen()
		}
	}
}

// pingOnce checks the current store; a fault takes it down.
func (s *KeyStore) pingOnce() {
	inner, gen, err := s.acquire()
	if err != nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), s.opts.PingTimeout)
	defer cancel()
	if err := inner.Ping(ctx); isFault(err) {
		s.markDown(gen, err, nil)
	}
}

// closeRetired starts closing the stores taken out of service. Closing
// waits for calls still running on them and releases the library, so that
// the next open initialises it afresh. It runs apart from the loop: a call
// stuck in a hung token must not stop signerd from reconnecting (see
// waitClosed).
func (s *KeyStore) closeRetired() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, ks := range s.retired {
		done := make(chan struct{})
		s.closing = append(s.closing, done)
		go func() {
			defer close(done)
			if err := ks.Close(); err != nil {
				// Expected on a dead token: logging out needs it.
				s.log.Debug("closed the broken HSM key store", slog.String("err", err.Error()))
			}
		}()
	}
	s.retired = nil
}

// waitClosed waits until the stores being closed are closed, at most limit
// (forever if limit < 0), and reports whether they are.
func (s *KeyStore) waitClosed(limit time.Duration) bool {
	s.mu.Lock()
	pending := s.closing
	s.mu.Unlock()
	var timeout <-chan time.Time
	if limit >= 0 {
		t := time.NewTimer(limit)
		defer t.Stop()
		timeout = t.C
	}
	for _, done := range pending {
		select {
		case <-done:
		case <-timeout:
			return false
		}
	}
	s.mu.Lock()
	s.closing = s.closing[len(pending):]
	s.mu.Unlock()
	return true
}

func (s *KeyStore) needsReopen() bool {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.cur == nil && !s.fatal && !s.closed
}

// reopen opens the token again, with capped exponential backoff, until it
// opens and answers Ping, the PIN is refused, or Close is called.
func (s *KeyStore) reopen() {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		select {
		case <-s.stop:
			cancel()
		case <-ctx.Done():
		}
	}()
	backoff := s.opts.MinBackoff
	var lastWarn time.Time
	var lastMsg string
	stuckWarned := false
	for attempt := 1; ; attempt++ {
		if !s.waitClosed(s.opts.PingTimeout) && !stuckWarned && ctx.Err() == nil {
			// The library stays initialised until the broken store is
			// closed, so a fresh C_Initialize waits for that too; try
			// anyway, in case the token answers to the old instance.
			s.log.Warn("the broken HSM context is still closing (a call is stuck in the token); reconnecting meanwhile")
			stuckWarned = true
		}
		s.log.Debug("HSM reconnect attempt", slog.Int("attempt", attempt))
		err := s.tryOpen(ctx)
		if err == nil {
			return
		}
		if ctx.Err() != nil {
			return
		}
		if errors.Is(err, errdefs.ErrPermissionDenied) {
			s.mu.Lock()
			s.fatal, s.last = true, err
			s.mu.Unlock()
			s.log.Error("HSM token refused the PIN when signerd reconnected; not retrying (each refusal counts towards locking the token): calls fail with HSM_UNAVAILABLE until signerd is restarted with the right PIN",
				slog.Int("attempt", attempt), slog.String("err", err.Error()))
			return
		}
		s.mu.Lock()
		s.last = err
		s.mu.Unlock()
		wait := jitter(backoff)
		if msg := err.Error(); msg != lastMsg || time.Since(lastWarn) >= warnEvery {
			s.log.Warn("HSM token still unavailable; retrying", slog.Int("attempt", attempt),
				slog.Duration("retry_in", wait), slog.String("err", msg))
			lastMsg, lastWarn = msg, time.Now()
		}
		t := time.NewTimer(wait)
		select {
		case <-s.stop:
			t.Stop()
			return
		case <-t.C:
		}
		backoff = min(2*backoff, s.opts.MaxBackoff)
	}
}

// tryOpen makes one attempt: open, Ping, and put the new store in service.
func (s *KeyStore) tryOpen(ctx context.Context) error {
	ks, err := s.opts.Open(ctx)
	if err != nil {
		return err
	}
	pctx, cancel := context.WithTimeout(ctx, s.opts.PingTimeout)
	err = ks.Ping(pctx)
	cancel()
	if err != nil {
		_ = ks.Close()
		return err
	}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		_ = ks.Close()
		return context.Canceled
	}
	s.cur, s.gen = ks, s.gen+1
	cause, since := s.cause, s.since
	s.cause, s.last = nil, nil
	s.mu.Unlock()
	s.log.Info("HSM token recovered: library initialised again and logged in; keys are found again, and their public keys re-checked, on first use",
		slog.Duration("down_for", time.Since(since).Round(time.Millisecond)), slog.String("cause", cause.Error()))
	s.publish()
	return nil
}

// jitter spreads d by ±20% so that several daemons on one HSM do not
// reconnect in step.
func jitter(d time.Duration) time.Duration {
	return d - d/5 + time.Duration(rand.Int64N(int64(d/5)*2+1))
}
