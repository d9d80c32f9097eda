//go:build cgo

package pkcs11

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"

	p11 "github.com/miekg/pkcs11"

	"github.com/signerd/signerd/internal/errdefs"
)

// tokenLogin records that this process is logged in to one token. Login is
// per application in PKCS#11: every session of the process shares it, so it
// is made once and counted.
type tokenLogin struct {
	holders  int
	salt     [16]byte
	verifier [32]byte // SHA-256(salt || PIN) of the PIN the token accepted
	// rejected is set when the token refused the PIN on a login after a
	// lost one (the PIN was changed under us). Every later attempt would
	// refuse too and burn the token's PIN retry counter, so none is made
	// until the process opens the token afresh.
	rejected error
}

func pinVerifier(salt [16]byte, pin string) [32]byte {
	h := sha256.New()
	h.Write(salt[:])
	h.Write([]byte(pin))
	var v [32]byte
	h.Sum(v[:0])
	return v
}

// acquireLoginLocked makes the process logged in to the token in slot as
// CKU_USER and counts one more holder. m.mu MUST be held.
//
// The first holder proves the PIN with C_Login. Later holders are compared
// with the recorded verifier instead: C_Login would answer
// CKR_USER_ALREADY_LOGGED_IN for any PIN, which proves nothing.
func (m *module) acquireLoginLocked(c *p11.Ctx, s p11.SessionHandle, slot uint, label, pin string) error {
	if l := m.logins[slot]; l != nil {
		v := pinVerifier(l.salt, pin)
		if subtle.ConstantTimeCompare(v[:], l.verifier[:]) != 1 {
			return fmt.Errorf("log in: %w", pinError(label, p11.Error(p11.CKR_PIN_INCORRECT)))
		}
		if err := m.reloginLocked(c, s, slot, label, pin); err != nil {
			return toKind("log in", label, err)
		}
		l.holders++
		return nil
	}
	switch err := c.Login(s, p11.CKU_USER, pin); {
	case err == nil:
	case errors.Is(err, p11.Error(p11.CKR_USER_ALREADY_LOGGED_IN)):
		// Someone in this process logged in without going through us: we
		// cannot tell whether our PIN is right, so refuse.
		return fmt.Errorf("log in: token %q is already logged in by another user of module %q in this process, so the PIN cannot be verified: %w",
			label, m.path, errdefs.ErrFailedPrecondition)
	default:
		return toKind("log in", label, err)
	}
	l := &tokenLogin{holders: 1}
	if _, err := rand.Read(l.salt[:]); err != nil {
		_ = c.Logout(s)
		return fmt.Errorf("log in: %v: %w", err, errdefs.ErrInternal)
	}
	l.verifier = pinVerifier(l.salt, pin)
	m.logins[slot] = l
	return nil
}

// releaseLoginLocked drops one holder; the last one logs out, which MUST
// happen while s (and so the library) is still open. m.mu MUST be held.
func (m *module) releaseLoginLocked(c *p11.Ctx, s p11.SessionHandle, slot uint) {
	l := m.logins[slot]
	if l == nil {
		return
	}
	if l.holders--; l.holders > 0 {
		return
	}
	delete(m.logins, slot)
	// An error means we were logged out already (sessions closed under us).
	_ = c.Logout(s)
}

// reloginLocked is ensureLoggedInLocked for a token this process logged in
// to before: a PIN the token rejected once is not offered again. m.mu MUST be
// held.
func (m *module) reloginLocked(c *p11.Ctx, s p11.SessionHandle, slot uint, label, pin string) error {
	l := m.logins[slot]
	if l != nil && l.rejected != nil {
		return fmt.Errorf("not logging in again after the token rejected the PIN: %w", l.rejected)
	}
	err := ensureLoggedInLocked(c, s, label, pin)
	if l != nil && classify(err) == classPIN {
		l.rejected = err
	}
	return err
}

// ensureLoggedInLocked logs in again if the process lost its login (all its
// sessions were closed, or someone called C_Logout). The PIN was proven when
// the holder opened, so CKR_USER_ALREADY_LOGGED_IN here only means another
// goroutine got there first. Errors are returned raw for classification,
// except PIN errors, which are final. m.mu MUST be held.
func ensureLoggedInLocked(c *p11.Ctx, s p11.SessionHandle, label, pin string) error {
	info, err := c.GetSessionInfo(s)
	if err != nil {
		return err
	}
	switch info.State {
	case p11.CKS_RO_USER_FUNCTIONS, p11.CKS_RW_USER_FUNCTIONS:
		return nil
	case p11.CKS_RW_SO_FUNCTIONS:
		return fmt.Errorf("token %q is logged in as security officer, not user: %w", label, errdefs.ErrFailedPrecondition)
	}
	err = c.Login(s, p11.CKU_USER, pin)
	if err == nil || errors.Is(err, p11.Error(p11.CKR_USER_ALREADY_LOGGED_IN)) {
		return nil
	}
	var rv p11.Error
	if errors.As(err, &rv) && classify(err) == classPIN {
		return pinError(label, rv)
	}
	return err
}
