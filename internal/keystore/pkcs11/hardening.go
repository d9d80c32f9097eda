//go:build cgo

package pkcs11

import (
	"errors"
	"log/slog"

	p11 "github.com/miekg/pkcs11"
)

// hardening is the attributes that freeze the objects we create
// (privateKeyTemplate): CKA_COPYABLE (PKCS#11 2.40) and CKA_MODIFIABLE
// (2.01), in the order a module that does not know them makes us drop
// them. They are defence in depth, for a caller that holds the PIN (who
// can sign with the key anyway) but would turn a signing key into a
// decryption or derivation key; a module of PKCS#11 2.20, which answers
// CKR_ATTRIBUTE_TYPE_INVALID to CKA_COPYABLE, must still be able to make
// keys. So the key is made without what the module does not know, and the
// daemon says so.
var hardening = []struct {
	typ  uint
	name string
}{{p11.CKA_COPYABLE, "CKA_COPYABLE"}, {p11.CKA_MODIFIABLE, "CKA_MODIFIABLE"}}

// withoutAttr is t without any attribute of type typ.
func withoutAttr(t []*p11.Attribute, typ uint) []*p11.Attribute {
	out := make([]*p11.Attribute, 0, len(t))
	for _, a := range t {
		if a.Type != typ {
			out = append(out, a)
		}
	}
	return out
}

func attributeTypeInvalid(err error) bool {
	return errors.Is(err, p11.Error(p11.CKR_ATTRIBUTE_TYPE_INVALID))
}

// softened is called after make failed with CKR_ATTRIBUTE_TYPE_INVALID
// for the i-th time: it logs the hardening attribute dropped and reports
// whether one was left to drop.
func (ks *KeyStore) softened(i int) bool {
	if i >= len(hardening) {
		return false
	}
	ks.log.Warn("the PKCS#11 module does not know a protection attribute; the key is made without it",
		slog.String("attribute", hardening[i].name))
	return true
}

// generateKeyPair is C_GenerateKeyPair with the hardening attributes the
// module knows.
func (ks *KeyStore) generateKeyPair(s p11.SessionHandle, mech []*p11.Mechanism, pubT, privT []*p11.Attribute) (p11.ObjectHandle, p11.ObjectHandle, error) {
	for i := 0; ; i++ {
		pub, priv, err := ks.ctx.GenerateKeyPair(s, mech, pubT, privT)
		if !attributeTypeInvalid(err) || !ks.softened(i) {
			return pub, priv, err
		}
		pubT, privT = withoutAttr(pubT, hardening[i].typ), withoutAttr(privT, hardening[i].typ)
	}
}

// createObject is C_CreateObject with the hardening attributes the module
// knows.
func (ks *KeyStore) createObject(s p11.SessionHandle, t []*p11.Attribute) (p11.ObjectHandle, error) {
	for i := 0; ; i++ {
		h, err := ks.ctx.CreateObject(s, t)
		if !attributeTypeInvalid(err) || !ks.softened(i) {
			return h, err
		}
		t = withoutAttr(t, hardening[i].typ)
	}
}
