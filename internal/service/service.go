// Package service holds signerd's use cases: keys, signing, verification,
// trust and policy. It knows no transport (no gRPC) and no database (it
// talks to store.Store) and no PKCS#11 (it holds keystore.KeyStore).
package service

import (
	"context"
	"fmt"
	"log/slog"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/signerd/signerd/internal/errdefs"
	"github.com/signerd/signerd/internal/keystore"
	"github.com/signerd/signerd/internal/store"
)

// Options tune a Service.
type Options struct {
	Logger *slog.Logger
	// HSMConcurrency bounds concurrent HSM operations; it should match the
	// key store's session pool so callers queue here, in FIFO order, with
	// their context honoured, rather than inside the PKCS#11 library.
	HSMConcurrency int
	// Now is the clock; tests may replace it.
	Now func() time.Time
	// Observer receives metrics events; nil discards them.
	Observer Observer
	// VerifiedCacheEntries bounds the cache of signatures that verified
	// (verifycache.go): 0 means DefaultVerifiedCacheEntries, a negative
	// value turns it off.
	VerifiedCacheEntries int
	// RefusalWindow and RefusalFullRecords bound the audit records of
	// refusals (refusals.go): per caller and reason, the first
	// RefusalFullRecords of each window are written in full, the rest
	// counted in one aggregate record. Zero means the defaults
	// (DefaultRefusalWindow, DefaultRefusalFullRecords); a negative
	// RefusalFullRecords writes none in full.
	RefusalWindow      time.Duration
	RefusalFullRecords int
	// LogOrigin names the transparency log in its checkpoint notes (and
	// is the note key's name); "" means DefaultLogOrigin(). It must pass
	// auditlog.CheckOrigin (the daemon checks its configuration).
	LogOrigin string
}

// Observer is told about events worth a metric. Implementations must be
// fast and safe for concurrent use.
type Observer interface {
	// HSMAcquired reports a request got an HSM slot after waiting.
	HSMAcquired(wait time.Duration)
	// HSMReleased reports a slot was given back.
	HSMReleased()
	// Signed reports a recorded signature.
	Signed(key, algorithm, format string)
	// Verified reports a Verify outcome: VERIFIED, UNSIGNED_ADMITTED or the
	// refusal reason.
	Verified(outcome string)
}

type nopObserver struct{}

func (nopObserver) HSMAcquired(time.Duration)     {}
func (nopObserver) HSMReleased()                  {}
func (nopObserver) Signed(string, string, string) {}
func (nopObserver) Verified(string)               {}

// Service implements the use cases.
type Service struct {
	store store.Store // wrapped: mutations invalidate cache
	cache *cache
	keys  keystore.KeyStore
	log   *slog.Logger
	now   func() time.Time
	hsm   chan struct{}
	obs   Observer
	audit auditKeyState // the audit checkpoint key (audit.go)
	// verified remembers signatures that verified (verifycache.go).
	verified *verifiedCache
	// tables verifies Ed25519 signatures for Verify (verifytables.go).
	tables *verifyTables
	// refusals bounds the audit records of refusals (refusals.go).
	refusals *refusalLimiter
	// origin names the transparency log (logkey.go).
	origin string
}

// New builds a Service over a store and a key store.
func New(st store.Store, ks keystore.KeyStore, opts Options) *Service {
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.HSMConcurrency <= 0 {
		opts.HSMConcurrency = 8
	}
	if opts.Observer == nil {
		opts.Observer = nopObserver{}
	}
	if opts.VerifiedCacheEntries == 0 {
		opts.VerifiedCacheEntries = DefaultVerifiedCacheEntries
	}
	if opts.RefusalFullRecords == 0 {
		opts.RefusalFullRecords = DefaultRefusalFullRecords
	}
	if opts.LogOrigin == "" {
		opts.LogOrigin = DefaultLogOrigin()
	}
	c := newCache()
	return &Service{
		origin:   opts.LogOrigin,
		refusals: newRefusalLimiter(opts.RefusalWindow, opts.RefusalFullRecords),
		verified: newVerifiedCache(max(opts.VerifiedCacheEntries, 0)),
		tables:   newVerifyTables(),
		store:    invalidatingStore{Store: st, c: c},
		cache:    c,
		keys:     ks,
		log:      opts.Logger,
		now:      func() time.Time { return opts.Now().UTC() },
		hsm:      make(chan struct{}, opts.HSMConcurrency),
		obs:      opts.Observer,
	}
}

// acquireHSM waits for an HSM slot or the context's end.
func (s *Service) acquireHSM(ctx context.Context) (release func(), err error) {
	start := time.Now()
	select {
	case s.hsm <- struct{}{}:
		s.obs.HSMAcquired(time.Since(start))
		return func() { <-s.hsm; s.obs.HSMReleased() }, nil
	case <-ctx.Done():
		return nil, fmt.Errorf("waiting for an HSM session: %w", ctx.Err())
	}
}

// Caller identifies who made a request, for the audit trail and for
// authorization. The transport layer puts it in the context.
type Caller struct {
	// ID is a stable printable identity, e.g. "uid:1000" or "cn:build-farm".
	ID string
}

type callerKey struct{}

// WithCaller returns a context carrying the caller.
func WithCaller(ctx context.Context, c Caller) context.Context {
	return context.WithValue(ctx, callerKey{}, c)
}

// CallerFrom returns the caller in ctx, or "unknown".
func CallerFrom(ctx context.Context) Caller {
	if c, ok := ctx.Value(callerKey{}).(Caller); ok && c.ID != "" {
		return c
	}
	return Caller{ID: "unknown"}
}

// event starts an audit event for the calling identity.
func (s *Service) event(ctx context.Context, op string) store.AuditEvent {
	return store.AuditEvent{Time: s.now(), Caller: CallerFrom(ctx).ID, Operation: op, Outcome: "ok"}
}

// validKeyName reports whether name matches ^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$
// (TestValidKeyNameMatchesRegexp), by hand: every Sign and SignSkill
// checks a name, and the regexp cost a microsecond of each.
func validKeyName(name string) bool {
	if len(name) == 0 || len(name) > 128 {
		return false
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		case i > 0 && (c == '.' || c == '_' || c == '-'):
		default:
			return false
		}
	}
	return true
}

// ValidateKeyName checks a key name: it appears in PKCS#11 labels, file
// names and shell scripts, so it is kept to a safe alphabet.
func ValidateKeyName(name string) error {
	if !validKeyName(name) {
		return fmt.Errorf("key name %s is invalid: use 1-128 letters, digits, '.', '_' or '-', starting with a letter or digit: %w", errdefs.Quote(name), errdefs.ErrInvalidArgument)
	}
	if name == AuditKeyName {
		return fmt.Errorf("key name %q is reserved for signerd's audit checkpoint key: it cannot be created, imported or used to sign (signctl audit public-key prints it): %w", name, errdefs.ErrInvalidArgument)
	}
	if name == LogKeyName {
		return fmt.Errorf("key name %q is reserved for signerd's transparency log key: it cannot be created, imported or used to sign: %w", name, errdefs.ErrInvalidArgument)
	}
	return nil
}

// ValidateOrg checks an org identifier: any printable string (Cloacina uses
// UUIDs) of at most 256 bytes.
func ValidateOrg(org string) error {
	if org == "" {
		return fmt.Errorf("org is required: %w", errdefs.ErrInvalidArgument)
	}
	if len(org) > 256 || !utf8.ValidString(org) {
		return fmt.Errorf("org %s is invalid: at most 256 bytes of UTF-8: %w", errdefs.Quote(org), errdefs.ErrInvalidArgument)
	}
	for _, r := range org {
		if !unicode.IsPrint(r) {
			return fmt.Errorf("org %s contains a non-printable character: %w", errdefs.Quote(org), errdefs.ErrInvalidArgument)
		}
	}
	return nil
}
