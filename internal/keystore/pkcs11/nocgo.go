//go:build !cgo

package pkcs11

import (
	"context"
	"crypto"
	"fmt"

	"github.com/signerd/signerd/internal/errdefs"
	"github.com/signerd/signerd/internal/keystore"
)

// errNoCgo is what every entry point returns in a build without cgo, which
// cannot load a PKCS#11 library.
var errNoCgo = fmt.Errorf("signerd was built without cgo; PKCS#11 needs cgo (rebuild with CGO_ENABLED=1 and a C compiler): %w",
	errdefs.ErrFailedPrecondition)

// KeyStore is unusable in a build without cgo; Open never returns one.
type KeyStore struct{}

var _ keystore.KeyStore = (*KeyStore)(nil)

// Open fails: PKCS#11 needs cgo.
func Open(context.Context, Config) (*KeyStore, error) { return nil, errNoCgo }

// InitToken fails: PKCS#11 needs cgo.
func InitToken(modulePath, label, soPIN, userPIN string) error { return errNoCgo }

// KeyAttributes are the protection attributes of a private key in a token.
type KeyAttributes struct {
	Token, Private, Sensitive, Extractable, Sign  bool
	AlwaysSensitive, NeverExtractable, Local      bool
	Decrypt, Unwrap, Derive, Modifiable, Copyable bool
}

// PublicKeyAttributes are the usage attributes of a public key in a token.
type PublicKeyAttributes struct{ Verify, Encrypt, Wrap, Derive, Modifiable, Copyable bool }

// InspectPublicKey fails: PKCS#11 needs cgo.
func InspectPublicKey(modulePath, tokenLabel, pin string, id []byte) (PublicKeyAttributes, error) {
	return PublicKeyAttributes{}, errNoCgo
}

// InspectPrivateKey fails: PKCS#11 needs cgo.
func InspectPrivateKey(modulePath, tokenLabel, pin string, id []byte) (KeyAttributes, error) {
	return KeyAttributes{}, errNoCgo
}

// ProbePrivateValue fails: PKCS#11 needs cgo.
func ProbePrivateValue(modulePath, tokenLabel, pin string, id []byte) error { return errNoCgo }

// CreateKey fails: PKCS#11 needs cgo.
func (*KeyStore) CreateKey(context.Context, keystore.CreateKeyRequest) (crypto.PublicKey, error) {
	return nil, errNoCgo
}

// ImportKey fails: PKCS#11 needs cgo.
func (*KeyStore) ImportKey(context.Context, keystore.ImportKeyRequest) (crypto.PublicKey, error) {
	return nil, errNoCgo
}

// Signer fails: PKCS#11 needs cgo.
func (*KeyStore) Signer(context.Context, keystore.KeyRef) (crypto.Signer, error) {
	return nil, errNoCgo
}

// Ping fails: PKCS#11 needs cgo.
func (*KeyStore) Ping(context.Context) error { return errNoCgo }

// Close does nothing.
func (*KeyStore) Close() error { return nil }

// FindToken fails: PKCS#11 needs cgo.
func FindToken(modulePath, label string) (TokenIdentity, error) { return TokenIdentity{}, errNoCgo }
