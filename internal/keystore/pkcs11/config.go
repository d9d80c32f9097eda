package pkcs11

import (
	"context"
	"fmt"
	"log/slog"
	"strconv"
	"time"
)

// Defaults applied by Open to zero Config fields.
const (
	// DefaultMaxSessions bounds the session pool (both algorithms).
	// SoftHSM2 serialises signing inside, so more sessions than cores buy
	// nothing; a network HSM needs more to keep round trips overlapping.
	DefaultMaxSessions = 8
	// DefaultPoolWaitTimeout bounds the wait for a free session.
	DefaultPoolWaitTimeout = 5 * time.Second
)

// Config says which token to open and how to use it.
type Config struct {
	// ModulePath is the PKCS#11 library, e.g. /usr/lib/softhsm/libsofthsm2.so.
	ModulePath string
	// TokenLabel selects the token (CKA_LABEL of the token, not of a key).
	TokenLabel string
	// TokenSerial, TokenModel and TokenManufacturer also select the token
	// when set (from a pkcs11: URI): every one given must match. A label or
	// a serial is required.
	TokenSerial, TokenModel, TokenManufacturer string
	// CheckToken, if set, is called with the identity of the token found,
	// before the PIN is offered to it; an error refuses the token (Open
	// returns it). The daemon uses it to refuse a token other than the one
	// its keys were made in.
	CheckToken func(ctx context.Context, id TokenIdentity) error
	// PIN is the user PIN. It is never logged nor put in an error.
	PIN string
	// MaxSessions bounds the session pool; DefaultMaxSessions if zero.
	MaxSessions int
	// PoolWaitTimeout bounds the wait for a pooled session;
	// DefaultPoolWaitTimeout if zero.
	PoolWaitTimeout time.Duration
	// Logger receives operational events; slog.Default() if nil.
	Logger *slog.Logger
}

// String redacts the PIN so that a Config printed by accident (%v, a log
// attribute) does not disclose it.
func (c Config) String() string {
	pin := ""
	if c.PIN != "" {
		pin = "[redacted]"
	}
	return "pkcs11.Config{ModulePath:" + c.ModulePath + " TokenLabel:" + c.TokenLabel + " TokenSerial:" + c.TokenSerial +
		" PIN:" + pin + " MaxSessions:" + strconv.Itoa(c.MaxSessions) + " PoolWaitTimeout:" + c.PoolWaitTimeout.String() + "}"
}

// GoString redacts the PIN for %#v as String does for %v.
func (c Config) GoString() string { return c.String() }

// LogValue redacts the PIN when the Config is logged with slog.
func (c Config) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("module", c.ModulePath),
		slog.String("token", c.TokenLabel),
		slog.Int("max_sessions", c.MaxSessions),
		slog.Duration("pool_wait_timeout", c.PoolWaitTimeout),
	)
}

func (c Config) withDefaults() Config {
	if c.MaxSessions <= 0 {
		c.MaxSessions = DefaultMaxSessions
	}
	if c.PoolWaitTimeout <= 0 {
		c.PoolWaitTimeout = DefaultPoolWaitTimeout
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return c
}

// TokenIdentity is what a token says it is (C_GetTokenInfo), padding
// removed.
type TokenIdentity struct {
	Label, Serial, Model, Manufacturer string
}

func (id TokenIdentity) String() string {
	return fmt.Sprintf("%q (serial %q, model %q, manufacturer %q)", id.Label, id.Serial, id.Model, id.Manufacturer)
}
