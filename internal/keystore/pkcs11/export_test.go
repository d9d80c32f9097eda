//go:build cgo

package pkcs11

import (
	"fmt"

	p11 "github.com/miekg/pkcs11"
)

// Test hooks that break the token under a KeyStore the way the outside
// world can: they act on the shared library state, not on KeyStore fields.

// CloseAllSessions closes every session of this process on the KeyStore's
// slot, which also logs the process out.
func CloseAllSessions(ks *KeyStore) error { return ks.ctx.CloseAllSessions(ks.slot) }

// FinalizeLibrary finalizes the library under the KeyStore, as a crashed
// or reset module would leave it.
func FinalizeLibrary(ks *KeyStore) error { return ks.ctx.Finalize() }

// LogoutProcess logs the process out of the token without closing sessions.
func LogoutProcess(ks *KeyStore) error {
	return withSession(ks, func(s p11.SessionHandle) error { return ks.ctx.Logout(s) })
}

// ChangePIN changes the user PIN under the KeyStore, as an administrator
// could while signerd runs.
func ChangePIN(ks *KeyStore, oldPIN, newPIN string) error {
	return withSession(ks, func(s p11.SessionHandle) error { return ks.ctx.SetPIN(s, oldPIN, newPIN) })
}

// MoveKey gives the private key with CKA_ID from the CKA_ID to, after
// destroying the private key that had to: the public key of to then sits
// beside a private key that does not match it.
func MoveKey(ks *KeyStore, from, to []byte) error {
	return withSession(ks, func(s p11.SessionHandle) error {
		victim, err := findByID(ks.ctx, s, p11.CKO_PRIVATE_KEY, to)
		if err != nil || len(victim) != 1 {
			return fmt.Errorf("find %x: %v (%d found)", to, err, len(victim))
		}
		if err := ks.ctx.DestroyObject(s, victim[0]); err != nil {
			return err
		}
		moved, err := findByID(ks.ctx, s, p11.CKO_PRIVATE_KEY, from)
		if err != nil || len(moved) != 1 {
			return fmt.Errorf("find %x: %v (%d found)", from, err, len(moved))
		}
		return ks.ctx.SetAttributeValue(s, moved[0], []*p11.Attribute{p11.NewAttribute(p11.CKA_ID, to)})
	})
}

// ForgetKeys empties the key cache, as a restart would.
func ForgetKeys(ks *KeyStore) {
	ks.cacheMu.Lock()
	defer ks.cacheMu.Unlock()
	clear(ks.edKeys)
	clear(ks.ecKeys)
}

func withSession(ks *KeyStore, fn func(p11.SessionHandle) error) error {
	s, err := ks.ctx.OpenSession(ks.slot, p11.CKF_SERIAL_SESSION|p11.CKF_RW_SESSION)
	if err != nil {
		return err
	}
	defer ks.ctx.CloseSession(s)
	return fn(s)
}

// PoisonHandles replaces every cached Ed25519 handle with one the token
// never issued.
func PoisonHandles(ks *KeyStore) {
	ks.cacheMu.Lock()
	defer ks.cacheMu.Unlock()
	for id, k := range ks.edKeys {
		k.priv = 0x7fff_0000
		ks.edKeys[id] = k
	}
}
