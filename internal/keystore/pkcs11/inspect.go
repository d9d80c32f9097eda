//go:build cgo

package pkcs11

import (
	"fmt"

	p11 "github.com/miekg/pkcs11"

	"github.com/signerd/signerd/internal/errdefs"
)

// KeyAttributes are the protection attributes of a private key in a token.
type KeyAttributes struct {
	Token            bool // CKA_TOKEN: persistent, not a session object
	Private          bool // CKA_PRIVATE: needs login to use
	Sensitive        bool // CKA_SENSITIVE: value never revealed
	Extractable      bool // CKA_EXTRACTABLE: may be wrapped out
	Sign             bool // CKA_SIGN
	AlwaysSensitive  bool // CKA_ALWAYS_SENSITIVE: has never been revealable
	NeverExtractable bool // CKA_NEVER_EXTRACTABLE: has never been extractable
	Local            bool // CKA_LOCAL: generated in the token, not imported
	Decrypt          bool // CKA_DECRYPT: must be false, the key only signs
	Unwrap           bool // CKA_UNWRAP: must be false
	Derive           bool // CKA_DERIVE: must be false
	Modifiable       bool // CKA_MODIFIABLE: attributes may be changed
	Copyable         bool // CKA_COPYABLE: C_CopyObject may copy it
}

// PublicKeyAttributes are the usage attributes of a public key in a token.
type PublicKeyAttributes struct {
	Verify  bool // CKA_VERIFY
	Encrypt bool // CKA_ENCRYPT: must be false, the key only verifies
	Wrap    bool // CKA_WRAP: must be false
	Derive  bool // CKA_DERIVE: must be false
	// CKA_MODIFIABLE: attributes may be changed
	Modifiable bool
	// CKA_COPYABLE: C_CopyObject may copy it
	Copyable bool
}

// InspectPrivateKey reads the protection attributes of the private key with
// CKA_ID id. It opens its own logged-in session, outside any KeyStore, so
// tests and tools can check a token that another process (a running
// signerd) writes to.
func InspectPrivateKey(modulePath, tokenLabel, pin string, id []byte) (KeyAttributes, error) {
	var ka KeyAttributes
	err := withTokenSession(modulePath, tokenLabel, pin, func(c *p11.Ctx, s p11.SessionHandle) error {
		h, err := onePrivateKey(c, s, tokenLabel, id)
		if err != nil {
			return err
		}
		return readBools(c, s, h, tokenLabel, id, []boolAttr{
			{p11.CKA_TOKEN, &ka.Token}, {p11.CKA_PRIVATE, &ka.Private}, {p11.CKA_SENSITIVE, &ka.Sensitive},
			{p11.CKA_EXTRACTABLE, &ka.Extractable}, {p11.CKA_SIGN, &ka.Sign},
			{p11.CKA_ALWAYS_SENSITIVE, &ka.AlwaysSensitive}, {p11.CKA_NEVER_EXTRACTABLE, &ka.NeverExtractable},
			{p11.CKA_LOCAL, &ka.Local}, {p11.CKA_DECRYPT, &ka.Decrypt}, {p11.CKA_UNWRAP, &ka.Unwrap},
			{p11.CKA_DERIVE, &ka.Derive}, {p11.CKA_MODIFIABLE, &ka.Modifiable}, {p11.CKA_COPYABLE, &ka.Copyable},
		})
	})
	return ka, err
}

// InspectPublicKey reads the usage attributes of the public key with CKA_ID
// id, through its own session like InspectPrivateKey.
func InspectPublicKey(modulePath, tokenLabel, pin string, id []byte) (PublicKeyAttributes, error) {
	var pa PublicKeyAttributes
	err := withTokenSession(modulePath, tokenLabel, pin, func(c *p11.Ctx, s p11.SessionHandle) error {
		hs, err := findByID(c, s, p11.CKO_PUBLIC_KEY, id)
		if err != nil {
			return toKind(fmt.Sprintf("find public key %x", id), tokenLabel, err)
		}
		if len(hs) != 1 {
			return fmt.Errorf("token %q holds %d public keys with ID %x, want 1: %w", tokenLabel, len(hs), id, errdefs.ErrNotFound)
		}
		return readBools(c, s, hs[0], tokenLabel, id, []boolAttr{
			{p11.CKA_VERIFY, &pa.Verify}, {p11.CKA_ENCRYPT, &pa.Encrypt},
			{p11.CKA_WRAP, &pa.Wrap}, {p11.CKA_DERIVE, &pa.Derive}, {p11.CKA_MODIFIABLE, &pa.Modifiable},
			{p11.CKA_COPYABLE, &pa.Copyable},
		})
	})
	return pa, err
}

type boolAttr struct {
	typ uint
	dst *bool
}

// readBools fetches every attribute of fields in one C_GetAttributeValue.
func readBools(c *p11.Ctx, s p11.SessionHandle, h p11.ObjectHandle, tokenLabel string, id []byte, fields []boolAttr) error {
	tmpl := make([]*p11.Attribute, len(fields))
	for i, f := range fields {
		tmpl[i] = p11.NewAttribute(f.typ, nil)
	}
	attrs, err := c.GetAttributeValue(s, h, tmpl)
	if err != nil {
		return toKind(fmt.Sprintf("read attributes of key %x", id), tokenLabel, err)
	}
	for i, f := range fields {
		*f.dst = attrBool(attrs[i].Value)
	}
	return nil
}

// ProbePrivateValue asks the token for CKA_VALUE of the private key with
// CKA_ID id, as an attacker holding the PIN would, and returns the token's
// answer: for a key signerd created, an error wrapping both
// p11.Error(CKR_ATTRIBUTE_SENSITIVE) and errdefs.ErrPermissionDenied. If the token does reveal the value, the
// bytes are zeroed and dropped and ProbePrivateValue returns nil.
func ProbePrivateValue(modulePath, tokenLabel, pin string, id []byte) error {
	return withTokenSession(modulePath, tokenLabel, pin, func(c *p11.Ctx, s p11.SessionHandle) error {
		h, err := onePrivateKey(c, s, tokenLabel, id)
		if err != nil {
			return err
		}
		v, err := getAttr(c, s, h, p11.CKA_VALUE)
		clear(v)
		if err != nil {
			return toKind(fmt.Sprintf("read CKA_VALUE of key %x", id), tokenLabel, err)
		}
		return nil
	})
}

func onePrivateKey(c *p11.Ctx, s p11.SessionHandle, label string, id []byte) (p11.ObjectHandle, error) {
	hs, err := findByID(c, s, p11.CKO_PRIVATE_KEY, id)
	if err != nil {
		return 0, toKind(fmt.Sprintf("find key %x", id), label, err)
	}
	if len(hs) != 1 {
		return 0, fmt.Errorf("token %q holds %d private keys with ID %x, want 1: %w", label, len(hs), id, errdefs.ErrNotFound)
	}
	return hs[0], nil
}

// FindToken reports the identity of the initialised token labelled label,
// without logging in: for tests and tools that need its serial number.
func FindToken(modulePath, label string) (TokenIdentity, error) {
	canonical, err := checkModuleFile(modulePath)
	if err != nil {
		return TokenIdentity{}, err
	}
	m := moduleFor(canonical)
	m.mu.Lock()
	defer m.mu.Unlock()
	c, err := m.loadLocked(modulePath)
	if err != nil {
		return TokenIdentity{}, err
	}
	defer m.releaseLocked()
	_, ti, err := findSlot(c, modulePath, label)
	if err != nil {
		return TokenIdentity{}, err
	}
	return identityOf(ti), nil
}
