//go:build cgo

package pkcs11

import (
	"errors"
	"log/slog"

	p11 "github.com/miekg/pkcs11"
)

// hardening is the attributes that freeze the objects we create
// (privateKeyTemplate): CKA_COPYABLE (PKCS#11 2.40) and CKA_MODIFIABLE
// (2.01), in the order a module that refuses them makes us drop them.
// They are defence in depth, for a caller that holds the PIN (who can sign
// with the key anyway) but would turn a signing key into a decryption or
// derivation key; a module of PKCS#11 2.20, which does not know
// CKA_COPYABLE, must still be able to make keys. So the key is made
// without what the module refuses, and the daemon says so.
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

// refusesAttribute reports an error by which a module may refuse an
// attribute it does not support: PKCS#11 says CKR_ATTRIBUTE_TYPE_INVALID,
// but modules also answer CKR_TEMPLATE_INCONSISTENT (AWS CloudHSM documents
// it for unsupported template attributes) or CKR_ATTRIBUTE_VALUE_INVALID.
func refusesAttribute(err error) bool {
	return errors.Is(err, p11.Error(p11.CKR_ATTRIBUTE_TYPE_INVALID)) ||
		errors.Is(err, p11.Error(p11.CKR_TEMPLATE_INCONSISTENT)) ||
		errors.Is(err, p11.Error(p11.CKR_ATTRIBUTE_VALUE_INVALID))
}

// softening makes an object with as many hardening attributes as the
// module takes: all of them first, then, while the module refuses the
// template (refusesAttribute), without one more: try is called with how
// many to drop. If none goes through, the first error is returned: the
// refusal was of something else. Only a creation that went through after
// dropping some logs which.
func (ks *KeyStore) softening(try func(dropped int) error) error {
	first := try(0)
	if !refusesAttribute(first) {
		return first
	}
	for n := 1; n <= len(hardening); n++ {
		err := try(n)
		if err == nil {
			for _, h := range hardening[:n] {
				ks.log.Warn("the PKCS#11 module refused a protection attribute; the key is made without it",
					slog.String("attribute", h.name), slog.Any("refusal", first))
			}
			return nil
		}
		if !refusesAttribute(err) {
			return err
		}
	}
	return first
}

// withoutHardening is t without the first n hardening attributes.
func withoutHardening(t []*p11.Attribute, n int) []*p11.Attribute {
	for _, h := range hardening[:n] {
		t = withoutAttr(t, h.typ)
	}
	return t
}

// generateKeyPair is C_GenerateKeyPair with the hardening attributes the
// module takes.
func (ks *KeyStore) generateKeyPair(s p11.SessionHandle, mech []*p11.Mechanism, pubT, privT []*p11.Attribute) (pub, priv p11.ObjectHandle, err error) {
	err = ks.softening(func(n int) error {
		var err error
		pub, priv, err = ks.ctx.GenerateKeyPair(s, mech, withoutHardening(pubT, n), withoutHardening(privT, n))
		return err
	})
	return pub, priv, err
}

// createObject is C_CreateObject with the hardening attributes the module
// takes.
func (ks *KeyStore) createObject(s p11.SessionHandle, t []*p11.Attribute) (h p11.ObjectHandle, err error) {
	err = ks.softening(func(n int) error {
		var err error
		h, err = ks.ctx.CreateObject(s, withoutHardening(t, n))
		return err
	})
	return h, err
}
