//go:build cgo

package pkcs11

import (
	"context"
	"log/slog"
)

// withRecovery runs attempt, and after a repairable failure repairs by the
// error's class and runs it again, at most once per class; anything else,
// and a class that failed twice, is returned as is for the caller to map
// with toKind. attempt MUST hand back any session it took before returning.
func (ks *KeyStore) withRecovery(ctx context.Context, op string, attempt func() error) error {
	var tried [numClasses]bool
	for {
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
		if rerr := ks.repair(ctx, c); rerr != nil {
			ks.log.Error("PKCS#11 repair failed", slog.String("op", op), slog.String("class", c.String()),
				slog.String("error", rerr.Error()))
			return rerr
		}
	}
}

// repair fixes what class c says is broken.
func (ks *KeyStore) repair(ctx context.Context, c errClass) error {
	switch c {
	case classSession, classLogin:
		// Our pool dropped the generation of the broken session when it was
		// released. Sessions rarely die alone (C_CloseAllSessions, a token
		// reset), and the login dies with the last one, so check it.
		return ks.relogin(ctx)
	}
	// classHandle: the attempt dropped its cached handle; the retry finds
	// the key again and re-checks its public key.
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
