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

// ReplacePrivateKey destroys the private key with CKA_ID id and puts a
// new one of the same algorithm under that CKA_ID, as a caller holding the
// PIN can (our keys cannot be renamed: CKA_MODIFIABLE is false): the
// public key of id then sits beside a private key that does not match it.
func ReplacePrivateKey(ks *KeyStore, id []byte, ecdsa bool) error {
	return withSession(ks, func(s p11.SessionHandle) error {
		victim, err := findByID(ks.ctx, s, p11.CKO_PRIVATE_KEY, id)
		if err != nil || len(victim) != 1 {
			return fmt.Errorf("find %x: %v (%d found)", id, err, len(victim))
		}
		if err := ks.ctx.DestroyObject(s, victim[0]); err != nil {
			return err
		}
		keyType, params, mech := uint(ckkECEdwards), ecParamsEd25519, uint(ckmECEdwardsKeyPairGen)
		if ecdsa {
			keyType, params, mech = p11.CKK_EC, ecParamsP256, p11.CKM_EC_KEY_PAIR_GEN
		}
		// The intruder's public half is a session object, gone with the
		// session: only the recorded public key stays under id.
		pubT := append(withoutAttr(publicKeyTemplate([]byte("intruder"), "intruder", keyType), p11.CKA_TOKEN),
			p11.NewAttribute(p11.CKA_TOKEN, false), p11.NewAttribute(p11.CKA_EC_PARAMS, params))
		_, _, err = ks.ctx.GenerateKeyPair(s, []*p11.Mechanism{p11.NewMechanism(mech, nil)}, pubT, privateKeyTemplate(id, "intruder", keyType))
		return err
	})
}

// TryLoosen tries to make the private key with CKA_ID id decrypt, as a
// caller holding the PIN would to turn a signing key into something
// else, first by changing it, then by copying it with the attribute
// changed; it returns each attempt's error.
func TryLoosen(ks *KeyStore, id []byte) (setErr, copyErr error) {
	err := withSession(ks, func(s p11.SessionHandle) error {
		hs, err := findByID(ks.ctx, s, p11.CKO_PRIVATE_KEY, id)
		if err != nil || len(hs) != 1 {
			return fmt.Errorf("find %x: %v (%d found)", id, err, len(hs))
		}
		loose := []*p11.Attribute{p11.NewAttribute(p11.CKA_DECRYPT, true)}
		setErr = ks.ctx.SetAttributeValue(s, hs[0], loose)
		var copied p11.ObjectHandle
		if copied, copyErr = ks.ctx.CopyObject(s, hs[0], loose); copyErr == nil {
			_ = ks.ctx.DestroyObject(s, copied)
		}
		return nil
	})
	if err != nil {
		return err, err
	}
	return setErr, copyErr
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
