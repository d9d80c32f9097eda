package pkcs11

// Test hooks that break the token under a KeyStore the way the outside
// world can: they act on the shared library state, not on KeyStore fields.

// CloseAllSessions closes every session of this process on the KeyStore's
// slot (crypto11's included), which also logs the process out.
func CloseAllSessions(ks *KeyStore) error { return ks.ctx.CloseAllSessions(ks.slot) }

// FinalizeLibrary finalizes the library under the KeyStore, as a crashed
// or reset module would leave it.
func FinalizeLibrary(ks *KeyStore) error { return ks.ctx.Finalize() }

// LogoutProcess logs the process out of the token without closing sessions.
func LogoutProcess(ks *KeyStore) error {
	s, err := ks.ctx.OpenSession(ks.slot, 6) // CKF_SERIAL_SESSION|CKF_RW_SESSION
	if err != nil {
		return err
	}
	defer ks.ctx.CloseSession(s)
	return ks.ctx.Logout(s)
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
