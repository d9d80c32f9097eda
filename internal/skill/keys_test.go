package skill

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"errors"
	"strings"
	"testing"

	"github.com/signerd/signerd/internal/errdefs"
)

const testKeyFP = "sha256:45892e73606fae4e54ac9ef9cba48aef747ac4af2f712fd13abb7c721f5a44cd"

func TestKeys(t *testing.T) {
	pub, err := ParsePublicKeyPEM(readFixture(t, "vectors", "keys", "pub.pem"))
	if err != nil {
		t.Fatal(err)
	}
	if fp, _ := Fingerprint(pub); fp != testKeyFP {
		t.Errorf("fingerprint %s", fp)
	}
	crlf := bytes.ReplaceAll(readFixture(t, "vectors", "keys", "pub.pem"), []byte("\n"), []byte("\r\n"))
	if fp, err := FingerprintPEM(crlf); err != nil || fp != testKeyFP {
		t.Errorf("CRLF PEM: %s %v", fp, err)
	}
	for _, f := range []string{"priv_pkcs8.pem", "priv_sec1.pem"} {
		priv, err := ParsePrivateKeyPEM(readFixture(t, "vectors", "keys", f))
		if err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		if !priv.PublicKey.Equal(pub) {
			t.Errorf("%s is not the test key", f)
		}
	}
	// openssl ecparam -genkey without -noout: EC PARAMETERS first.
	params := "-----BEGIN EC PARAMETERS-----\nBggqhkjOPQMBBw==\n-----END EC PARAMETERS-----\n"
	if _, err := ParsePrivateKeyPEM(append([]byte(params), readFixture(t, "vectors", "keys", "priv_sec1.pem")...)); err != nil {
		t.Errorf("EC PARAMETERS + key: %v", err)
	}
	p384, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if _, err := Fingerprint(&p384.PublicKey); !errors.Is(err, errdefs.ErrInvalidArgument) {
		t.Error("P-384 accepted")
	}
	for _, bad := range []string{"", "junk", params, string(readFixture(t, "vectors", "keys", "priv_pkcs8.pem"))} {
		if _, err := ParsePublicKeyPEM([]byte(bad)); !errors.Is(err, errdefs.ErrInvalidArgument) {
			t.Errorf("public %q accepted", bad)
		}
	}
	if _, err := ParsePrivateKeyPEM(readFixture(t, "vectors", "keys", "pub.pem")); err == nil {
		t.Error("public key accepted as private")
	}
	if !IsSHA256Ref(testKeyFP) || IsSHA256Ref(strings.ToUpper(testKeyFP)) || IsSHA256Ref("sha256:ab") {
		t.Error("IsSHA256Ref")
	}
}
