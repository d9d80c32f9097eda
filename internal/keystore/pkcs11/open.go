//go:build cgo

package pkcs11

import (
	"context"
	"fmt"
	"log/slog"
	"sync"

	p11 "github.com/miekg/pkcs11"

	"github.com/signerd/signerd/internal/errdefs"
	"github.com/signerd/signerd/internal/keystore"
)

// KeyStore is a keystore.KeyStore on one PKCS#11 token. It and the signers
// it returns are safe for concurrent use.
type KeyStore struct {
	cfg  Config // holds the PIN: never log it or format it with %v
	log  *slog.Logger
	mod  *module
	ctx  *p11.Ctx // the module's shared context (module.ctx)
	slot uint
	caps capabilities // read at Open
	pool *sessionPool

	// ops is held shared by every operation and exclusively by Close, so
	// that Close waits for work in flight and nothing starts after it.
	// Operations MUST NOT take it twice (a waiting Close would deadlock them).
	ops    sync.RWMutex
	closed bool

	// Keys found and checked, by CKA_ID.
	cacheMu sync.RWMutex
	edKeys  map[string]edKey
	ecKeys  map[string]ecKey
}

var _ keystore.KeyStore = (*KeyStore)(nil)

// Open loads the PKCS#11 module, finds the token labelled cfg.TokenLabel and
// logs in to it with cfg.PIN. Errors say what to fix and never contain the
// PIN: a missing or unloadable module is ErrInvalidArgument, an unknown
// label ErrNotFound (listing the labels present), a wrong or locked PIN
// ErrPermissionDenied. A wrong PIN is tried exactly once.
func Open(ctx context.Context, cfg Config) (*KeyStore, error) {
	cfg = cfg.withDefaults()
	if cfg.TokenLabel == "" && cfg.TokenSerial == "" {
		return nil, fmt.Errorf("open PKCS#11 token: no token label given: %w", errdefs.ErrInvalidArgument)
	}
	if cfg.PIN == "" {
		return nil, fmt.Errorf("open PKCS#11 token %q: no PIN given (use a PIN file or the environment): %w",
			cfg.TokenLabel, errdefs.ErrInvalidArgument)
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("open PKCS#11 token %q: %w", cfg.TokenLabel, err)
	}
	canonical, err := checkModuleFile(cfg.ModulePath)
	if err != nil {
		return nil, err
	}
	ks := &KeyStore{
		cfg:    cfg,
		log:    cfg.Logger.With(slog.String("pkcs11_token", cfg.TokenLabel)),
		mod:    moduleFor(canonical),
		edKeys: map[string]edKey{},
		ecKeys: map[string]ecKey{},
	}
	m := ks.mod
	m.mu.Lock()
	defer m.mu.Unlock()

	c, err := m.loadLocked(cfg.ModulePath)
	if err != nil {
		return nil, err
	}
	ks.ctx = c
	fail := func(err error) (*KeyStore, error) {
		if ks.pool != nil {
			ks.pool.closeAll()
		}
		m.releaseLocked()
		return nil, err
	}
	sel := tokenSelector{Label: cfg.TokenLabel, Serial: cfg.TokenSerial, Model: cfg.TokenModel, Manufacturer: cfg.TokenManufacturer}
	slot, ti, err := selectSlot(c, cfg.ModulePath, sel)
	if err != nil {
		return fail(err)
	}
	id := identityOf(ti)
	// Chosen by serial alone: messages and logs name the token by label.
	ks.cfg.TokenLabel, cfg.TokenLabel = id.Label, id.Label
	ks.log = cfg.Logger.With(slog.String("pkcs11_token", id.Label))
	if cfg.CheckToken != nil {
		if err := cfg.CheckToken(ctx, id); err != nil {
			return fail(fmt.Errorf("open PKCS#11 token %s: %w", id, err))
		}
	}
	if err := checkTokenFlags(cfg.TokenLabel, ti); err != nil {
		return fail(fmt.Errorf("open PKCS#11 token: %w", err))
	}
	ks.slot = slot
	caps, err := discover(c, slot, ti)
	if err != nil {
		return fail(toKind("read the token's mechanisms", cfg.TokenLabel, err))
	}
	ks.caps = caps
	poolSize := caps.poolSize(cfg.MaxSessions)
	caps.log(ks.log, cfg.MaxSessions, poolSize)
	ks.pool = newSessionPool(poolSize, cfg.PoolWaitTimeout,
		func() (p11.SessionHandle, error) {
			return c.OpenSession(slot, p11.CKF_SERIAL_SESSION|p11.CKF_RW_SESSION)
		},
		func(h p11.SessionHandle) { _ = c.CloseSession(h) })
	ks.pool.onShrink = func(n int) {
		ks.log.Warn("the token refused another session (CKR_SESSION_COUNT); pooling fewer", slog.Int("sessions_pooled", n))
	}
	s, err := ks.pool.get(ctx)
	if err != nil {
		return fail(toKind("open PKCS#11 session", cfg.TokenLabel, err))
	}
	err = m.acquireLoginLocked(c, s.h, slot, cfg.TokenLabel, cfg.PIN)
	ks.pool.release(s, err)
	if err != nil {
		return fail(err)
	}
	ks.log.Info("PKCS#11 token opened",
		slog.String("module", cfg.ModulePath), slog.Uint64("slot", uint64(slot)),
		slog.String("serial", id.Serial), slog.String("model", id.Model), slog.String("manufacturer", id.Manufacturer),
		slog.Int("max_sessions", poolSize), slog.Duration("pool_wait_timeout", cfg.PoolWaitTimeout))
	return ks, nil
}

// begin starts an operation; end MUST follow when it returns nil.
func (ks *KeyStore) begin() error {
	ks.ops.RLock()
	if ks.closed {
		ks.ops.RUnlock()
		return errdefs.WithReason(errdefs.ReasonHSMUnavailable,
			fmt.Errorf("PKCS#11 token %q: key store is closed: %w", ks.cfg.TokenLabel, errdefs.ErrUnavailable))
	}
	return nil
}

func (ks *KeyStore) end() { ks.ops.RUnlock() }

// Close waits for operations in flight, logs out (if it is the process's
// last user of the token), closes its sessions and releases the library,
// which is finalized if nothing else in the process uses it. Signers
// fail after Close. Close is idempotent.
func (ks *KeyStore) Close() error {
	ks.ops.Lock()
	defer ks.ops.Unlock()
	if ks.closed {
		return nil
	}
	ks.closed = true

	m := ks.mod
	m.mu.Lock()
	defer m.mu.Unlock()
	// Log out while sessions are open: C_Logout needs one.
	if s, err := ks.pool.get(context.Background()); err == nil {
		m.releaseLoginLocked(ks.ctx, s.h, ks.slot)
		ks.pool.put(s)
	} else {
		// No session can be opened: the token is gone and so is the login.
		m.releaseLoginLocked(ks.ctx, p11.SessionHandle(0), ks.slot)
	}
	ks.pool.closeAll()
	m.releaseLocked()

	ks.cacheMu.Lock()
	clear(ks.edKeys)
	clear(ks.ecKeys)
	ks.cacheMu.Unlock()
	ks.log.Info("PKCS#11 token closed")
	return nil
}

// Ping checks that a pooled session works, the process is logged in and the
// token is present, repairing what it can on the way. Any failure wraps
// errdefs.ErrUnavailable with reason HSM_UNAVAILABLE.
func (ks *KeyStore) Ping(ctx context.Context) error {
	if err := ks.begin(); err != nil {
		return err
	}
	defer ks.end()
	err := ks.withRecovery(ctx, "ping", func() error {
		s, err := ks.pool.get(ctx)
		if err != nil {
			return err
		}
		err = ks.requireLogin(s.h)
		if err == nil {
			var ti p11.TokenInfo
			if ti, err = ks.ctx.GetTokenInfo(ks.slot); err == nil {
				err = checkTokenFlags(ks.cfg.TokenLabel, ti)
			}
		}
		ks.pool.release(s, err)
		return err
	})
	if err == nil {
		return nil
	}
	return unavailable("ping", ks.cfg.TokenLabel, err)
}
