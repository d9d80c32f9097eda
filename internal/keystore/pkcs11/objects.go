//go:build cgo

package pkcs11

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/sha256"
	"crypto/x509"
	"encoding/asn1"
	"encoding/binary"
	"encoding/hex"
	"fmt"

	p11 "github.com/miekg/pkcs11"

	"github.com/signerd/signerd/internal/errdefs"
	"github.com/signerd/signerd/internal/keystore"
)

// PKCS#11 3.0 identifiers for Ed25519 that miekg/pkcs11's headers predate.
const (
	ckkECEdwards           = 0x40   // CKK_EC_EDWARDS
	ckmECEdwardsKeyPairGen = 0x1055 // CKM_EC_EDWARDS_KEY_PAIR_GEN
	ckmEdDSA               = 0x1057 // CKM_EDDSA
)

var (
	// ecParamsEd25519 is CKA_EC_PARAMS for Ed25519: the DER OID 1.3.101.112.
	// SoftHSM 2.6 also accepts PrintableString "edwards25519"
	// (ecParamsEd25519Name); we write the OID, which RFC 8410 and every HSM
	// we know accept, and read either.
	ecParamsEd25519     = []byte{0x06, 0x03, 0x2b, 0x65, 0x70}
	ecParamsEd25519Name = append([]byte{0x13, 0x0c}, "edwards25519"...)
	// ecParamsP256 is CKA_EC_PARAMS for P-256: the DER OID 1.2.840.10045.3.1.7.
	ecParamsP256 = []byte{0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07}

	// mechEdDSA is plain Ed25519: CKM_EDDSA without CK_EDDSA_PARAMS (which
	// would select Ed25519ph or Ed25519ctx). miekg only reads it, so one
	// value serves every goroutine.
	mechEdDSA = []*p11.Mechanism{p11.NewMechanism(ckmEdDSA, nil)}
)

// privateKeyTemplate holds the attributes every private key we create
// carries, generated or imported: a token object, usable only after login,
// never revealed (sensitive) nor wrapped out (non-extractable), for signing
// only. CKA_DECRYPT, CKA_UNWRAP and CKA_DERIVE are set false explicitly:
// SoftHSM2 (and PKCS#11 itself) leaves them to token defaults, and SoftHSM2
// defaults them to true, so a caller holding the PIN could otherwise use a
// signing key to decrypt, unwrap or derive. And the key is frozen
// (hardening): otherwise that caller could set those true afterwards
// (C_SetAttributeValue), or copy the key with them true (C_CopyObject).
func privateKeyTemplate(id []byte, label string, keyType uint) []*p11.Attribute {
	return []*p11.Attribute{
		p11.NewAttribute(p11.CKA_CLASS, p11.CKO_PRIVATE_KEY),
		p11.NewAttribute(p11.CKA_KEY_TYPE, keyType),
		p11.NewAttribute(p11.CKA_TOKEN, true),
		p11.NewAttribute(p11.CKA_PRIVATE, true),
		p11.NewAttribute(p11.CKA_SENSITIVE, true),
		p11.NewAttribute(p11.CKA_EXTRACTABLE, false),
		p11.NewAttribute(p11.CKA_SIGN, true),
		p11.NewAttribute(p11.CKA_DECRYPT, false),
		p11.NewAttribute(p11.CKA_UNWRAP, false),
		p11.NewAttribute(p11.CKA_DERIVE, false),
		p11.NewAttribute(p11.CKA_ID, id),
		p11.NewAttribute(p11.CKA_LABEL, label),
		p11.NewAttribute(p11.CKA_MODIFIABLE, false),
		p11.NewAttribute(p11.CKA_COPYABLE, false),
	}
}

// publicKeyTemplate is the public half's counterpart: it verifies and does
// nothing else (no encrypting, wrapping or deriving under the token's
// defaults), frozen likewise.
func publicKeyTemplate(id []byte, label string, keyType uint) []*p11.Attribute {
	return []*p11.Attribute{
		p11.NewAttribute(p11.CKA_CLASS, p11.CKO_PUBLIC_KEY),
		p11.NewAttribute(p11.CKA_KEY_TYPE, keyType),
		p11.NewAttribute(p11.CKA_TOKEN, true),
		p11.NewAttribute(p11.CKA_VERIFY, true),
		p11.NewAttribute(p11.CKA_ENCRYPT, false),
		p11.NewAttribute(p11.CKA_WRAP, false),
		p11.NewAttribute(p11.CKA_DERIVE, false),
		p11.NewAttribute(p11.CKA_ID, id),
		p11.NewAttribute(p11.CKA_LABEL, label),
		p11.NewAttribute(p11.CKA_MODIFIABLE, false),
		p11.NewAttribute(p11.CKA_COPYABLE, false),
	}
}

func findObjects(c *p11.Ctx, s p11.SessionHandle, template []*p11.Attribute) (hs []p11.ObjectHandle, err error) {
	if err := c.FindObjectsInit(s, template); err != nil {
		return nil, err
	}
	defer func() {
		if ferr := c.FindObjectsFinal(s); err == nil {
			err = ferr
		}
	}()
	for {
		more, _, err := c.FindObjects(s, 16)
		if err != nil {
			return nil, err
		}
		if len(more) == 0 {
			return hs, nil
		}
		hs = append(hs, more...)
	}
}

func findByID(c *p11.Ctx, s p11.SessionHandle, class uint, id []byte) ([]p11.ObjectHandle, error) {
	return findObjects(c, s, []*p11.Attribute{
		p11.NewAttribute(p11.CKA_CLASS, class),
		p11.NewAttribute(p11.CKA_ID, id),
	})
}

func getAttr(c *p11.Ctx, s p11.SessionHandle, o p11.ObjectHandle, typ uint) ([]byte, error) {
	attrs, err := c.GetAttributeValue(s, o, []*p11.Attribute{p11.NewAttribute(typ, nil)})
	if err != nil {
		return nil, err
	}
	return attrs[0].Value, nil
}

// attrUint decodes a CK_ULONG attribute (native byte order and size).
func attrUint(b []byte) uint {
	switch len(b) {
	case 8:
		return uint(binary.NativeEndian.Uint64(b))
	case 4:
		return uint(binary.NativeEndian.Uint32(b))
	}
	return ^uint(0)
}

func attrBool(b []byte) bool { return len(b) == 1 && b[0] != 0 }

// wrapPoint encodes a point as CKA_EC_POINT wants it: a DER OCTET STRING.
func wrapPoint(raw []byte) []byte {
	der, _ := asn1.Marshal(raw) // cannot fail for a []byte
	return der
}

// unwrapPoint returns the raw point of length n from CKA_EC_POINT, which
// tokens give either DER-wrapped (PKCS#11 says so) or raw (some do).
func unwrapPoint(b []byte, n int) ([]byte, error) {
	if len(b) == n {
		return b, nil
	}
	var raw []byte
	rest, err := asn1.Unmarshal(b, &raw)
	if err != nil || len(rest) != 0 || len(raw) != n {
		return nil, fmt.Errorf("CKA_EC_POINT is neither a %d-byte point nor a DER OCTET STRING holding one", n)
	}
	return raw, nil
}

// fingerprint names a public key in messages: the first 8 bytes of the
// SHA-256 of its SubjectPublicKeyInfo.
func fingerprint(pub crypto.PublicKey) string {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return "unknown"
	}
	sum := sha256.Sum256(der)
	return "sha256:" + hex.EncodeToString(sum[:8])
}

func (ks *KeyStore) notFound(id []byte) error {
	return errdefs.WithReason(errdefs.ReasonKeyNotInToken,
		fmt.Errorf("key %x not found in token %q: %w", id, ks.cfg.TokenLabel, errdefs.ErrNotFound))
}

func (ks *KeyStore) mismatch(id []byte, inToken, recorded crypto.PublicKey, why string) error {
	keys := fmt.Sprintf("token %s, recorded %s", fingerprint(inToken), fingerprint(recorded))
	if fingerprint(inToken) == fingerprint(recorded) {
		keys = "public key " + fingerprint(recorded)
	}
	return errdefs.WithReason(errdefs.ReasonKeyMismatch, fmt.Errorf(
		"key %x in token %q: %s (%s); refusing to use it: %w",
		id, ks.cfg.TokenLabel, why, keys, errdefs.ErrFailedPrecondition))
}

func (ks *KeyStore) wrongAlgorithm(id []byte, want keystore.Algorithm, got string) error {
	return errdefs.WithReason(errdefs.ReasonWrongAlgorithm, fmt.Errorf(
		"key %x in token %q is %s, not %s: %w", id, ks.cfg.TokenLabel, got, want, errdefs.ErrFailedPrecondition))
}

// keyTypeName names a CKA_KEY_TYPE for messages.
func keyTypeName(kt uint) string {
	switch kt {
	case p11.CKK_EC:
		return "an EC key (CKK_EC)"
	case ckkECEdwards:
		return "an EdDSA key (CKK_EC_EDWARDS)"
	case p11.CKK_RSA:
		return "an RSA key (CKK_RSA)"
	}
	return fmt.Sprintf("a key of type %#x", kt)
}

func (ks *KeyStore) ambiguous(id []byte, what string, n int) error {
	return fmt.Errorf("token %q holds %d %s objects with CKA_ID %x; refusing to pick one: %w",
		ks.cfg.TokenLabel, n, what, id, errdefs.ErrFailedPrecondition)
}

// requireLogin returns CKR_USER_NOT_LOGGED_IN when the process has lost its
// login, so that the recovery loop logs in again: private objects are
// invisible when logged out, and "not found" must not be reported for them.
func (ks *KeyStore) requireLogin(s p11.SessionHandle) error {
	info, err := ks.ctx.GetSessionInfo(s)
	if err != nil {
		return err
	}
	if info.State != p11.CKS_RW_USER_FUNCTIONS && info.State != p11.CKS_RO_USER_FUNCTIONS {
		return p11.Error(p11.CKR_USER_NOT_LOGGED_IN)
	}
	return nil
}

// lookupPrivate finds the one private key with CKA_ID id and returns its
// handle and CKA_KEY_TYPE.
//
// Login is checked before the search and again after an empty one: with
// only the check after, another goroutine logging in between the two would
// turn "not logged in" into a false "not found".
func (ks *KeyStore) lookupPrivate(s p11.SessionHandle, id []byte) (p11.ObjectHandle, uint, error) {
	if err := ks.requireLogin(s); err != nil {
		return 0, 0, err
	}
	hs, err := findByID(ks.ctx, s, p11.CKO_PRIVATE_KEY, id)
	if err != nil {
		return 0, 0, err
	}
	switch len(hs) {
	case 0:
		if err := ks.requireLogin(s); err != nil {
			return 0, 0, err
		}
		return 0, 0, ks.notFound(id)
	case 1:
	default:
		return 0, 0, ks.ambiguous(id, "private key", len(hs))
	}
	kt, err := getAttr(ks.ctx, s, hs[0], p11.CKA_KEY_TYPE)
	if err != nil {
		return 0, 0, err
	}
	return hs[0], attrUint(kt), nil
}

// lookupPublicPoint reads CKA_EC_PARAMS and CKA_EC_POINT of the one public
// key with CKA_ID id.
func (ks *KeyStore) lookupPublicPoint(s p11.SessionHandle, id []byte) (params, point []byte, err error) {
	hs, err := findByID(ks.ctx, s, p11.CKO_PUBLIC_KEY, id)
	if err != nil {
		return nil, nil, err
	}
	switch len(hs) {
	case 0:
		return nil, nil, fmt.Errorf("key %x in token %q has no public key object: %w", id, ks.cfg.TokenLabel, errdefs.ErrFailedPrecondition)
	case 1:
	default:
		return nil, nil, ks.ambiguous(id, "public key", len(hs))
	}
	attrs, err := ks.ctx.GetAttributeValue(s, hs[0], []*p11.Attribute{
		p11.NewAttribute(p11.CKA_EC_PARAMS, nil),
		p11.NewAttribute(p11.CKA_EC_POINT, nil),
	})
	if err != nil {
		return nil, nil, err
	}
	return attrs[0].Value, attrs[1].Value, nil
}

// publicFromToken decodes the public key stored in the token for alg.
func (ks *KeyStore) publicFromToken(s p11.SessionHandle, id []byte, alg keystore.Algorithm) (crypto.PublicKey, error) {
	params, point, err := ks.lookupPublicPoint(s, id)
	if err != nil {
		return nil, err
	}
	switch alg {
	case keystore.Ed25519:
		if !bytes.Equal(params, ecParamsEd25519) && !bytes.Equal(params, ecParamsEd25519Name) {
			return nil, ks.wrongAlgorithm(id, alg, fmt.Sprintf("an EdDSA key with CKA_EC_PARAMS %x", params))
		}
		raw, err := unwrapPoint(point, ed25519.PublicKeySize)
		if err != nil {
			return nil, fmt.Errorf("key %x in token %q: %v: %w", id, ks.cfg.TokenLabel, err, errdefs.ErrFailedPrecondition)
		}
		return ed25519.PublicKey(bytes.Clone(raw)), nil
	case keystore.ECDSAP256:
		if !bytes.Equal(params, ecParamsP256) {
			return nil, ks.wrongAlgorithm(id, alg, fmt.Sprintf("an EC key with CKA_EC_PARAMS %x", params))
		}
		raw, err := unwrapPoint(point, 65)
		if err != nil {
			return nil, fmt.Errorf("key %x in token %q: %v: %w", id, ks.cfg.TokenLabel, err, errdefs.ErrFailedPrecondition)
		}
		pub, err := ecdsa.ParseUncompressedPublicKey(elliptic.P256(), raw)
		if err != nil {
			return nil, fmt.Errorf("key %x in token %q: %v: %w", id, ks.cfg.TokenLabel, err, errdefs.ErrFailedPrecondition)
		}
		return pub, nil
	}
	return nil, fmt.Errorf("algorithm %q: %w", alg, errdefs.ErrInvalidArgument)
}

// countByID counts the private and public keys with CKA_ID id.
func (ks *KeyStore) countByID(s p11.SessionHandle, id []byte) (priv, pub int, err error) {
	privs, err := findByID(ks.ctx, s, p11.CKO_PRIVATE_KEY, id)
	if err != nil {
		return 0, 0, err
	}
	pubs, err := findByID(ks.ctx, s, p11.CKO_PUBLIC_KEY, id)
	if err != nil {
		return 0, 0, err
	}
	return len(privs), len(pubs), nil
}

// destroyByID removes the key objects with CKA_ID id. It is only used on
// leftovers of a failed attempt of the same CreateKey or ImportKey call,
// which found no object with that ID before it started.
func (ks *KeyStore) destroyByID(s p11.SessionHandle, id []byte) error {
	for _, class := range []uint{p11.CKO_PRIVATE_KEY, p11.CKO_PUBLIC_KEY} {
		hs, err := findByID(ks.ctx, s, class, id)
		if err != nil {
			return err
		}
		for _, h := range hs {
			if err := ks.ctx.DestroyObject(s, h); err != nil {
				// A module may refuse to delete an unmodifiable
				// object (PKCS#11 leaves it open): say what is left.
				return fmt.Errorf("remove the key objects with ID %x a failed attempt left in the token (remove them with the HSM's tools): %w", id, err)
			}
		}
	}
	return nil
}
