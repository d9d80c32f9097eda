// Package softhsm gives tests a fresh SoftHSM2 token of their own, and
// helpers to look inside it through PKCS#11 from any process.
//
// The HSM suite never silently skips: without SoftHSM2 installed, NewToken
// fails the test and says how to install it.
package softhsm

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/signerd/signerd/internal/keystore/pkcs11"
)

// ModuleEnv names the environment variable that overrides the module path.
const ModuleEnv = "SIGNERD_TEST_PKCS11_MODULE"

// modulePaths are where distributions install SoftHSM2's library.
var modulePaths = []string{
	"/usr/lib/softhsm/libsofthsm2.so",
	"/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so",
	"/usr/lib/aarch64-linux-gnu/softhsm/libsofthsm2.so",
}

// Token is a SoftHSM2 token initialised for one test. Its directory and
// configuration are removed with the test's temp dir.
type Token struct {
	ModulePath string // the SoftHSM2 library
	Label      string // the token's label
	PIN        string // the user PIN (random)
	ConfPath   string // softhsm2.conf; SOFTHSM2_CONF points at it for the test
	Dir        string // holds ConfPath and the tokens/ directory

	soPIN string
}

// ModulePath returns the SoftHSM2 library to test with: $SIGNERD_TEST_PKCS11_MODULE
// if set, else the first that exists of the distributions' paths. It fails
// the test if there is none.
func ModulePath(t testing.TB) string {
	t.Helper()
	p, err := FindModule()
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// FindModule is ModulePath for code without a testing.TB (TestMain).
func FindModule() (string, error) {
	if p := os.Getenv(ModuleEnv); p != "" {
		if _, err := os.Stat(p); err != nil {
			return "", fmt.Errorf("%s=%q: %w", ModuleEnv, p, err)
		}
		return p, nil
	}
	for _, p := range modulePaths {
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
	}
	return "", fmt.Errorf("SoftHSM2 is not installed; run `make test` (it installs softhsm2) or apt-get install softhsm2 (looked for %q; set %s to use another module)",
		modulePaths, ModuleEnv)
}

// NewToken creates and initialises a SoftHSM2 token in t.TempDir() and points
// SOFTHSM2_CONF at it for the rest of the test (so the test cannot be
// parallel). Child processes inherit SOFTHSM2_CONF and see the same token.
//
// SoftHSM2 reads SOFTHSM2_CONF when the library is initialised, which
// happens when the first KeyStore of the process opens and lasts until the
// last one closes: close every KeyStore on one token before making another.
func NewToken(t testing.TB) *Token {
	t.Helper()
	return NewTokenLabelled(t, "signerd-test-"+randomHex(t, 4))
}

// NewTokenLabelled is NewToken with the token's label chosen by the caller:
// two tokens of one label (in two token directories) stand for two HSMs
// an operator could confuse.
func NewTokenLabelled(t testing.TB, label string) *Token {
	t.Helper()
	module := ModulePath(t)
	dir := t.TempDir()
	tokens := filepath.Join(dir, "tokens")
	if err := os.Mkdir(tokens, 0o700); err != nil {
		t.Fatal(err)
	}
	conf := filepath.Join(dir, "softhsm2.conf")
	body := fmt.Sprintf("directories.tokendir = %s\nobjectstore.backend = file\nlog.level = ERROR\nslots.removable = false\n", tokens)
	if err := os.WriteFile(conf, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("SOFTHSM2_CONF", conf)
	tok := &Token{
		ModulePath: module,
		Label:      label,
		PIN:        randomHex(t, 8),
		ConfPath:   conf,
		Dir:        dir,
		soPIN:      randomHex(t, 8),
	}
	if err := pkcs11.InitToken(tok.ModulePath, tok.Label, tok.soPIN, tok.PIN); err != nil {
		t.Fatalf("initialise SoftHSM2 token: %v", err)
	}
	return tok
}

func randomHex(t testing.TB, n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

// Config returns a KeyStore configuration for the token.
func (tok *Token) Config() pkcs11.Config {
	return pkcs11.Config{ModulePath: tok.ModulePath, TokenLabel: tok.Label, PIN: tok.PIN}
}

// Env returns the environment entries a child process (signerd under test)
// needs to find the token: SOFTHSM2_CONF. The PIN is not included; pass it
// with WritePINFile.
func (tok *Token) Env() []string {
	return []string{"SOFTHSM2_CONF=" + tok.ConfPath}
}

// Identity returns what the token reports about itself (serial number,
// model, manufacturer).
func (tok *Token) Identity(t testing.TB) pkcs11.TokenIdentity {
	t.Helper()
	id, err := pkcs11.FindToken(tok.ModulePath, tok.Label)
	if err != nil {
		t.Fatalf("find token %q: %v", tok.Label, err)
	}
	return id
}

// WritePINFile writes the user PIN to a 0600 file in a fresh temp dir and
// returns its path, for --pin-file.
func (tok *Token) WritePINFile(t testing.TB) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "pin")
	if err := os.WriteFile(p, []byte(tok.PIN+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// PrivateKeyAttributes reports the protection attributes of the private key
// with CKA_ID ckaID, read through a session of its own (it works while
// another process, or a KeyStore in this one, uses the token).
func (tok *Token) PrivateKeyAttributes(t testing.TB, ckaID []byte) (sensitive, extractable, private, token bool) {
	t.Helper()
	ka := tok.KeyAttributes(t, ckaID)
	return ka.Sensitive, ka.Extractable, ka.Private, ka.Token
}

// KeyAttributes is PrivateKeyAttributes with every attribute signerd sets or
// relies on.
func (tok *Token) KeyAttributes(t testing.TB, ckaID []byte) pkcs11.KeyAttributes {
	t.Helper()
	ka, err := pkcs11.InspectPrivateKey(tok.ModulePath, tok.Label, tok.PIN, ckaID)
	if err != nil {
		t.Fatalf("inspect key %x: %v", ckaID, err)
	}
	return ka
}

// PublicKeyAttributes reads the usage attributes of the public key with
// CKA_ID ckaID, through a session of its own.
func (tok *Token) PublicKeyAttributes(t testing.TB, ckaID []byte) pkcs11.PublicKeyAttributes {
	t.Helper()
	pa, err := pkcs11.InspectPublicKey(tok.ModulePath, tok.Label, tok.PIN, ckaID)
	if err != nil {
		t.Fatalf("inspect public key %x: %v", ckaID, err)
	}
	return pa
}

// ReadPrivateValue asks the token for the private key's CKA_VALUE and
// returns the token's error: for keys signerd made it wraps
// p11.Error(CKR_ATTRIBUTE_SENSITIVE) (and errdefs.ErrPermissionDenied). nil
// means the token revealed the value (which is discarded): a failure.
func (tok *Token) ReadPrivateValue(t testing.TB, ckaID []byte) error {
	t.Helper()
	return pkcs11.ProbePrivateValue(tok.ModulePath, tok.Label, tok.PIN, ckaID)
}
