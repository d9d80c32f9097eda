//go:build !cgo

package pkcs11

// ChangeUserPIN fails: PKCS#11 needs cgo.
func ChangeUserPIN(modulePath, tokenLabel, oldPIN, newPIN string) error { return errNoCgo }
