//go:build cgo

package pkcs11

import (
	"fmt"

	p11 "github.com/miekg/pkcs11"

	"github.com/signerd/signerd/internal/errdefs"
)

// InitToken initialises a token labelled label in the module's first free
// (uninitialised) slot with security officer PIN soPIN, and sets its user
// PIN to userPIN. It exists so that `make run` and the tests can create a
// token without putting PINs in a command line (softhsm2-util --pin would).
// A token already labelled label is ErrAlreadyExists; no free slot is
// ErrFailedPrecondition. PINs never appear in errors.
func InitToken(modulePath, label, soPIN, userPIN string) error {
	switch {
	case label == "" || len(label) > 32:
		return fmt.Errorf("init token: label must be 1 to 32 bytes, got %d: %w", len(label), errdefs.ErrInvalidArgument)
	case soPIN == "" || userPIN == "":
		return fmt.Errorf("init token %q: security officer and user PINs must both be set: %w", label, errdefs.ErrInvalidArgument)
	}
	canonical, err := checkModuleFile(modulePath)
	if err != nil {
		return err
	}
	m := moduleFor(canonical)
	m.mu.Lock()
	defer m.mu.Unlock()
	c, err := m.loadLocked(modulePath)
	if err != nil {
		return err
	}
	defer m.releaseLocked()

	slots, err := c.GetSlotList(true)
	if err != nil {
		return unavailable("init token: list slots", label, err)
	}
	free, found := uint(0), false
	var ti p11.TokenInfo
	for _, s := range slots {
		info, err := c.GetTokenInfo(s)
		if err != nil {
			return unavailable(fmt.Sprintf("init token: read slot %d", s), label, err)
		}
		if info.Flags&p11.CKF_TOKEN_INITIALIZED != 0 {
			if info.Label == label {
				return fmt.Errorf("init token: module %q already has a token labelled %q: %w", modulePath, label, errdefs.ErrAlreadyExists)
			}
			continue
		}
		if !found {
			free, found, ti = s, true, info
		}
	}
	if !found {
		return fmt.Errorf("init token %q: module %q has no free (uninitialised) slot: %w", label, modulePath, errdefs.ErrFailedPrecondition)
	}
	for _, pin := range []string{soPIN, userPIN} {
		if uint(len(pin)) < ti.MinPinLen || uint(len(pin)) > ti.MaxPinLen {
			return fmt.Errorf("init token %q: PINs must be %d to %d bytes: %w", label, ti.MinPinLen, ti.MaxPinLen, errdefs.ErrInvalidArgument)
		}
	}
	if err := c.InitToken(free, soPIN, label); err != nil {
		return toKind(fmt.Sprintf("init token %q in slot %d", label, free), label, err)
	}
	// Some modules renumber the slot once its token is initialised.
	slot, _, err := findSlot(c, modulePath, label)
	if err != nil {
		return err
	}
	s, err := c.OpenSession(slot, p11.CKF_SERIAL_SESSION|p11.CKF_RW_SESSION)
	if err != nil {
		return toKind("init token: open session", label, err)
	}
	defer func() { _ = c.CloseSession(s) }()
	if err := c.Login(s, p11.CKU_SO, soPIN); err != nil {
		return toKind("init token: log in as security officer", label, err)
	}
	defer func() { _ = c.Logout(s) }()
	if err := c.InitPIN(s, userPIN); err != nil {
		return toKind("init token: set user PIN", label, err)
	}
	return nil
}
