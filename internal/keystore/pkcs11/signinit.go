//go:build cgo

package pkcs11

import (
	"errors"
	"fmt"

	p11 "github.com/miekg/pkcs11"
)

// errOperationLeft marks a failure after C_SignInit succeeded: the session
// may still hold the signing operation, so it is closed, not reused.
var errOperationLeft = errors.New("signing operation left active in the session")

// alwaysAuthenticate reads the private key's CKA_ALWAYS_AUTHENTICATE. A
// module that does not know the attribute (PKCS#11 before 2.20) has no such
// keys.
func (ks *KeyStore) alwaysAuthenticate(s p11.SessionHandle, key p11.ObjectHandle) (bool, error) {
	v, err := getAttr(ks.ctx, s, key, p11.CKA_ALWAYS_AUTHENTICATE)
	switch {
	case errors.Is(err, p11.Error(p11.CKR_ATTRIBUTE_TYPE_INVALID)):
		return false, nil
	case err != nil:
		return false, err
	}
	return attrBool(v), nil
}

// signInit starts a signature with mech on s and, for a key with
// CKA_ALWAYS_AUTHENTICATE, gives the user PIN again as a context-specific
// login, which the token requires after every C_SignInit on such a key. It
// takes no module lock: a context-specific login changes no login state.
func (ks *KeyStore) signInit(s p11.SessionHandle, mech []*p11.Mechanism, key p11.ObjectHandle, auth bool) error {
	if err := ks.ctx.SignInit(s, mech, key); err != nil {
		return err
	}
	if !auth {
		return nil
	}
	err := ks.ctx.Login(s, p11.CKU_CONTEXT_SPECIFIC, ks.cfg.PIN)
	if err == nil {
		return nil
	}
	var rv p11.Error
	if errors.As(err, &rv) && classify(err) == classPIN {
		return fmt.Errorf("context-specific login for a key that needs one for each signature: %w: %w", pinError(ks.cfg.TokenLabel, rv), errOperationLeft)
	}
	return fmt.Errorf("context-specific login: %w: %w", err, errOperationLeft)
}
