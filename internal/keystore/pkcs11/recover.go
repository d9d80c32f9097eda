//go:build cgo

package pkcs11

import (
	"context"
	"log/slog"

	"github.com/ThalesGroup/crypto11"
)

// withRecovery runs attempt, and after a repairable failure repairs by the
// error's class and runs it again, at most once per class; anything else,
// and a class that failed twice, is returned as is for the caller to map
// with toKind. attempt MUST hand back any session it took before returning.
func (ks *KeyStore) withRecovery(ctx context.Context, op string, attempt func() error) error {
	var tried [numClasses]bool
	for {
		gen := ks.c11Generation()
		err := attempt()
		if err == nil {
			return nil
		}
		c := classify(err)
		if !c.repairable() || tried[c] {
			return err
		}
		tried[c] = true
		ks.log.Warn("PKCS#11 call failed; repairing and retrying",
			slog.String("op", op), slog.String("class", c.String()), slog.String("error", err.Error()))
		if rerr := ks.repair(ctx, c, gen); rerr != nil {
			ks.log.Error("PKCS#11 repair failed", slog.String("op", op), slog.String("class", c.String()),
				slog.String("error", rerr.Error()))
			return rerr
		}
	}
}

// repair fixes what class c says is broken. gen is the crypto11 generation
// the failed attempt started with.
func (ks *KeyStore) repair(ctx context.Context, c errClass, gen uint64) error {
	switch c {
	case classSession:
		// Our pool dropped the generation of the broken session when it was
		// released. Sessions rarely die alone (C_CloseAllSessions, a token
		// reset), so crypto11's are replaced too, and the login, which dies
		// with the last session, is checked.
		if err := ks.rebuildC11(gen); err != nil {
			return err
		}
		return ks.relogin(ctx)
	case classLogin:
		return ks.relogin(ctx)
	}
	// classHandle: the attempt dropped its cached handle; the retry finds
	// the key again and re-checks its public key. classStale: just retry.
	return nil
}

// relogin logs in again if the process has lost its login.
func (ks *KeyStore) relogin(ctx context.Context) error {
	s, err := ks.pool.get(ctx)
	if err != nil {
		return err
	}
	ks.mod.mu.Lock()
	err = ks.mod.reloginLocked(ks.ctx, s.h, ks.slot, ks.cfg.TokenLabel, ks.cfg.PIN)
	ks.mod.mu.Unlock()
	ks.pool.release(s, err)
	if err == nil {
		ks.log.Info("PKCS#11 login checked after a failure")
	}
	return err
}

func (ks *KeyStore) c11Generation() uint64 {
	ks.c11mu.RLock()
	defer ks.c11mu.RUnlock()
	return ks.c11gen
}

// currentC11 returns the crypto11 Context in use and its generation.
func (ks *KeyStore) currentC11() (*crypto11.Context, uint64) {
	ks.c11mu.RLock()
	defer ks.c11mu.RUnlock()
	return ks.c11, ks.c11gen
}

// rebuildC11 replaces the crypto11 Context of generation gen (if nobody has
// yet). The new Context is configured before the old one is closed, so the
// library's reference count never reaches zero and nothing is finalized;
// closing the old one waits until calls still running on it return.
func (ks *KeyStore) rebuildC11(gen uint64) error {
	ks.c11mu.Lock()
	if ks.c11gen != gen || ks.c11 == nil {
		ks.c11mu.Unlock()
		return nil
	}
	ks.mod.mu.Lock()
	next, err := crypto11.Configure(ks.c11Config())
	ks.mod.mu.Unlock()
	if err != nil {
		ks.c11mu.Unlock()
		return err
	}
	old := ks.c11
	ks.c11, ks.c11gen = next, ks.c11gen+1
	ks.c11mu.Unlock()

	ks.cacheMu.Lock()
	clear(ks.ecKeys)
	ks.cacheMu.Unlock()
	ks.log.Info("crypto11 context replaced after broken sessions")
	return old.Close()
}
