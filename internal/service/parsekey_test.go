package service

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"strings"
	"testing"

	"github.com/signerd/signerd/internal/errdefs"
	"github.com/signerd/signerd/internal/keystore"
)

// TestParsePrivateKeyRefusals: a key import given the wrong file says
// what the file holds and what is wanted, once (a public key PEM was
// answered with an ASN.1 structure error, and ECDSA errors said "private
// key: private key").
func TestParsePrivateKeyRefusals(t *testing.T) {
	edPub, _, _ := ed25519.GenerateKey(rand.Reader)
	ecKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	pubPEM := func(k any) []byte {
		der, err := x509.MarshalPKIXPublicKey(k)
		if err != nil {
			t.Fatal(err)
		}
		return pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
	}
	for _, tc := range []struct {
		name string
		alg  keystore.Algorithm
		in   []byte
		want string
	}{
		{"ed25519 public key", keystore.Ed25519, pubPEM(edPub), `holds a "PUBLIC KEY" PEM block`},
		{"ed25519 garbage", keystore.Ed25519, []byte("hello"), "raw 32-byte seed"},
		{"ecdsa public key", keystore.ECDSAP256, pubPEM(&ecKey.PublicKey), `unexpected PEM block "PUBLIC KEY"`},
		{"ecdsa garbage", keystore.ECDSAP256, []byte("hello"), "no PRIVATE KEY or EC PRIVATE KEY PEM block"},
	} {
		_, err := parsePrivateKey(tc.alg, tc.in)
		if !errors.Is(err, errdefs.ErrInvalidArgument) || !strings.Contains(err.Error(), tc.want) || strings.Count(err.Error(), "private key") > 1 {
			t.Errorf("%s: %v, want invalid argument saying %q, naming the private key once", tc.name, err, tc.want)
		}
	}
}
