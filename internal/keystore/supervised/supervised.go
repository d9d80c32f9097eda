// Package supervised keeps a keystore.KeyStore usable across HSM faults
// without a restart of signerd.
//
// A KeyStore here wraps the store an Opener returns (pkcs11.Open in the
// daemon). While the token works it passes every call through. When a call
// or the periodic health check shows that the token is gone (the module was
// finalized or reset, the token removed, its object store moved away), it:
//
//  1. marks itself down: from then on every call fails at once with
//     errdefs.ErrUnavailable, reason HSM_UNAVAILABLE, and a message saying
//     why and since when; nothing waits for the token;
//  2. reports NOT_SERVING through the health callback (the daemon's gRPC
//     health service);
//  3. closes the broken store (which logs out and, as the last user of the
//     library, finalizes it) and opens a new one in the background, with
//     capped exponential backoff, until it opens and answers Ping: the
//     library is initialised again, the token found and logged in to;
//  4. reports SERVING again. Keys are found again lazily, on first use,
//     where the underlying store re-checks every key's public key against
//     the recorded one (keystore.KeyRef).
//
// A PIN the token refuses (wrong, locked, expired: errdefs.ErrPermissionDenied)
// is final: the store stays down, says so, and never offers the PIN again,
// since every refusal counts towards locking the token. Restarting signerd
// with the right PIN is the way out.
//
// Only faults after a successful Open are handled here: Open returns the
// first open's error unchanged, so a wrong module, label or PIN still stops
// start-up with the underlying store's message.
//
// # Why a confirming Ping
//
// Not every fault says so. SoftHSM2, for one, keeps serving a token whose
// directory has disappeared as an empty token: object handles become
// invalid and key lookups find nothing (a plain "key not found"), while
// C_GetTokenInfo fails. So an ErrNotFound, ErrInternal or
// ErrPermissionDenied from the token is confirmed with a Ping before it is
// returned: if the Ping fails as unavailable, the call fails as
// HSM_UNAVAILABLE and the store goes down; otherwise the original error
// stands. Caller errors (invalid argument, key mismatch, already exists,
// busy, cancelled) are returned as they are. (A token that vanished and
// came back between a call's failure and the Ping would leave that one call
// with its own error; SoftHSM2 cannot do that, since a token it lost stays
// lost until the library is initialised again.)
//
// # A hung token
//
// Closing a broken store waits for the calls still inside it. If one is
// stuck in the token, the loop does not wait for it beyond PingTimeout: it
// reconnects meanwhile and says so in the log.
package supervised

import (
	"context"
	"crypto"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/signerd/signerd/internal/errdefs"
	"github.com/signerd/signerd/internal/keystore"
)

// Defaults for zero Options fields.
const (
	// DefaultPingInterval is how often an idle token is checked, so that a
	// dead token is noticed (and reported by the health service) before a
	// caller needs it.
	DefaultPingInterval = 5 * time.Second
	// DefaultPingTimeout bounds each health check.
	DefaultPingTimeout = 5 * time.Second
	// DefaultMinBackoff and DefaultMaxBackoff bound the wait between two
	// attempts to open the token again: it starts at the minimum and
	// doubles up to the maximum.
	DefaultMinBackoff = 100 * time.Millisecond
	DefaultMaxBackoff = 5 * time.Second
)

// Opener opens the underlying key store. It is called by Open and then by
// the recovery loop after each fault, so it must start from scratch every
// time (load and initialise the library, find the token, log in).
type Opener func(ctx context.Context) (keystore.KeyStore, error)

// Options configure Open.
type Options struct {
	// Open opens the underlying store. Required.
	Open Opener
	// Name names the token in messages (its label).
	Name string
	// Logger receives fault and recovery events; slog.Default() if nil.
	Logger *slog.Logger
	// PingInterval is how often the token is checked while up;
	// DefaultPingInterval if zero, never if negative.
	PingInterval time.Duration
	// PingTimeout bounds each check; DefaultPingTimeout if zero.
	PingTimeout time.Duration
	// MinBackoff and MaxBackoff bound the wait between attempts to open
	// the token again; DefaultMinBackoff and DefaultMaxBackoff if zero.
	MinBackoff, MaxBackoff time.Duration
}

func (o Options) withDefaults() Options {
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.PingInterval == 0 {
		o.PingInterval = DefaultPingInterval
	}
	if o.PingTimeout <= 0 {
		o.PingTimeout = DefaultPingTimeout
	}
	if o.MinBackoff <= 0 {
		o.MinBackoff = DefaultMinBackoff
	}
	if o.MaxBackoff <= 0 {
		o.MaxBackoff = DefaultMaxBackoff
	}
	if o.MaxBackoff < o.MinBackoff {
		o.MaxBackoff = o.MinBackoff
	}
	return o
}

// KeyStore is a keystore.KeyStore that survives faults of the token under
// it (see the package doc). It and its signers are safe for concurrent use.
type KeyStore struct {
	opts Options
	log  *slog.Logger

	mu      sync.RWMutex
	cur     keystore.KeyStore   // nil while down or closed
	gen     uint64              // counts successful opens; a signer of an older one finds its key again
	cause   error               // what took the store down; nil while up
	last    error               // the latest failed attempt to open it again
	since   time.Time           // when it went down
	fatal   bool                // the PIN was refused: no more attempts
	retired []keystore.KeyStore // broken stores the loop has yet to close
	closed  bool
	closing []chan struct{} // closed when each broken store being closed is

	wake chan struct{} // cap 1: something for the loop to do
	stop chan struct{} // closed by Close
	done chan struct{} // closed when the loop returns

	// healthMu serialises health reports so that the last one made is
	// always the current state (see publish).
	healthMu sync.Mutex
	notify   []func(serving bool)
}

var _ keystore.KeyStore = (*KeyStore)(nil)

// Open opens the underlying store once, returning its error unchanged if
// that fails, and starts the supervision loop.
func Open(ctx context.Context, opts Options) (*KeyStore, error) {
	if opts.Open == nil {
		return nil, fmt.Errorf("supervised key store: no opener: %w", errdefs.ErrInvalidArgument)
	}
	opts = opts.withDefaults()
	inner, err := opts.Open(ctx)
	if err != nil {
		return nil, err
	}
	s := &KeyStore{
		opts: opts,
		log:  opts.Logger.With(slog.String("hsm_token", opts.Name)),
		cur:  inner,
		gen:  1,
		wake: make(chan struct{}, 1),
		stop: make(chan struct{}),
		done: make(chan struct{}),
	}
	go s.run()
	return s, nil
}

// NotifyHealth registers fn to hear whether the token is usable (the gRPC
// health service, a metric), and calls it at once with the current state.
// Every registered fn is called again on every change (possibly more
// often), never concurrently; fn must not call the KeyStore's Close.
func (s *KeyStore) NotifyHealth(fn func(serving bool)) {
	s.healthMu.Lock()
	s.notify = append(s.notify, fn)
	s.healthMu.Unlock()
	s.publish()
}

// Serving reports whether the token is usable now.
func (s *KeyStore) Serving() bool {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.cur != nil
}

// publish reports the current state. It reads the state after taking
// healthMu, so whichever of two racing reports runs last reports what is
// true now.
func (s *KeyStore) publish() {
	s.healthMu.Lock()
	defer s.healthMu.Unlock()
	serving := s.Serving()
	for _, fn := range s.notify {
		fn(serving)
	}
}

// acquire returns the current store and its generation, or the error every
// call gets while the store is down.
func (s *KeyStore) acquire() (keystore.KeyStore, uint64, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.cur == nil {
		return nil, 0, s.downErrLocked()
	}
	return s.cur, s.gen, nil
}

// downErrLocked is the fail-fast error. The cause is formatted, not
// wrapped: whatever its kind (a refused PIN is ErrPermissionDenied), the
// caller's answer is "unavailable". s.mu MUST be held.
func (s *KeyStore) downErrLocked() error {
	var err error
	switch {
	case s.closed:
		err = fmt.Errorf("HSM token %q: key store is closed (signerd is stopping): %w", s.opts.Name, errdefs.ErrUnavailable)
	case s.fatal:
		err = fmt.Errorf("HSM token %q is down since %s and signerd will not reconnect (%v); fix the PIN and restart signerd: %w",
			s.opts.Name, s.since.Format(time.RFC3339), s.finalReasonLocked(), errdefs.ErrUnavailable)
	case s.last != nil:
		err = fmt.Errorf("HSM token %q is down since %s (%v); signerd is reconnecting in the background (last attempt: %v): %w",
			s.opts.Name, s.since.Format(time.RFC3339), s.cause, s.last, errdefs.ErrUnavailable)
	default:
		err = fmt.Errorf("HSM token %q is down since %s (%v); signerd is reconnecting in the background: %w",
			s.opts.Name, s.since.Format(time.RFC3339), s.cause, errdefs.ErrUnavailable)
	}
	return errdefs.WithReason(errdefs.ReasonHSMUnavailable, err)
}

func (s *KeyStore) finalReasonLocked() error {
	if s.last != nil {
		return s.last
	}
	return s.cause
}

// check looks at err, returned by inner (generation gen): a fault takes the
// store down and becomes the fail-fast error; anything else is returned as
// it is. See the package doc for the confirming Ping.
func (s *KeyStore) check(ctx context.Context, inner keystore.KeyStore, gen uint64, err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	cause := err
	if !errors.Is(err, errdefs.ErrUnavailable) {
		if !errors.Is(err, errdefs.ErrNotFound) && !errors.Is(err, errdefs.ErrInternal) && !errors.Is(err, errdefs.ErrPermissionDenied) {
			return err
		}
		pctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.opts.PingTimeout)
		perr := inner.Ping(pctx)
		cancel()
		if !isFault(perr) {
			return err
		}
		// The Ping's failure is the fault; err was its symptom.
		cause = perr
	}
	s.markDown(gen, cause, err)
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.cur != nil {
		// Recovered meanwhile (or the failure was on a store already
		// replaced): this call still failed on the old one.
		return errdefs.WithReason(errdefs.ReasonHSMUnavailable, fmt.Errorf(
			"HSM token %q failed during the call and has been reconnected since (%v); try again: %w", s.opts.Name, err, errdefs.ErrUnavailable))
	}
	return s.downErrLocked()
}

// isFault reports whether err, from a Ping, says the token cannot be used:
// unavailable, or a PIN it refuses (the store's Ping reports a refused PIN
// as both).
func isFault(err error) bool {
	return err != nil && (errors.Is(err, errdefs.ErrUnavailable) || errors.Is(err, errdefs.ErrPermissionDenied))
}

// markDown takes the store of generation gen out of service because of
// cause (seen as symptom by a call, if not nil), unless that has happened
// already, and wakes the loop.
func (s *KeyStore) markDown(gen uint64, cause, symptom error) {
	s.mu.Lock()
	if s.closed || s.cur == nil || s.gen != gen {
		s.mu.Unlock()
		return
	}
	s.retired = append(s.retired, s.cur)
	s.cur, s.cause, s.last, s.since = nil, cause, nil, time.Now()
	s.fatal = errors.Is(cause, errdefs.ErrPermissionDenied)
	fatal := s.fatal
	s.mu.Unlock()
	attrs := []any{slog.String("err", cause.Error())}
	if symptom != nil && symptom != cause {
		attrs = append(attrs, slog.String("seen_as", symptom.Error()))
	}
	if fatal {
		s.log.Error("HSM token refused the PIN; signerd will not offer it again (each refusal counts towards locking the token): calls fail with HSM_UNAVAILABLE until signerd is restarted with the right PIN", attrs...)
	} else {
		s.log.Error("HSM token unavailable: calls fail fast with HSM_UNAVAILABLE while signerd reconnects in the background", attrs...)
	}
	s.publish()
	s.kick()
}

func (s *KeyStore) kick() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// Close stops the supervision loop and closes the current store (logging
// out) after the calls in flight on it; it is idempotent. Calls fail after
// Close.
func (s *KeyStore) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	cur := s.cur
	s.cur = nil
	s.mu.Unlock()
	close(s.stop)
	<-s.done
	s.closeRetired()
	s.waitClosed(-1)
	if cur != nil {
		return cur.Close()
	}
	return nil
}

// CreateKey implements keystore.KeyStore.
func (s *KeyStore) CreateKey(ctx context.Context, req keystore.CreateKeyRequest) (crypto.PublicKey, error) {
	inner, gen, err := s.acquire()
	if err != nil {
		return nil, err
	}
	pub, err := inner.CreateKey(ctx, req)
	return pub, s.check(ctx, inner, gen, err)
}

// ImportKey implements keystore.KeyStore.
func (s *KeyStore) ImportKey(ctx context.Context, req keystore.ImportKeyRequest) (crypto.PublicKey, error) {
	inner, gen, err := s.acquire()
	if err != nil {
		return nil, err
	}
	pub, err := inner.ImportKey(ctx, req)
	return pub, s.check(ctx, inner, gen, err)
}

// Ping implements keystore.KeyStore: the fail-fast error while down, else
// the underlying store's Ping (a failure takes the store down).
func (s *KeyStore) Ping(ctx context.Context) error {
	inner, gen, err := s.acquire()
	if err != nil {
		return err
	}
	return s.check(ctx, inner, gen, inner.Ping(ctx))
}
