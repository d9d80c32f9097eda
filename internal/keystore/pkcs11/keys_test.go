//go:build cgo

package pkcs11_test

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"errors"
	"testing"

	p11 "github.com/miekg/pkcs11"

	"github.com/signerd/signerd/internal/errdefs"
	"github.com/signerd/signerd/internal/keystore"
	"github.com/signerd/signerd/internal/keystore/pkcs11"
	"github.com/signerd/signerd/internal/testutil/softhsm"
)

func TestCreateSignVerify(t *testing.T) {
	tok := softhsm.NewToken(t)
	ks := open(t, tok)
	for _, alg := range algorithms {
		t.Run(string(alg), func(t *testing.T) {
			ref, s := createKey(t, ks, alg)
			switch alg {
			case keystore.Ed25519:
				if _, ok := ref.Public.(ed25519.PublicKey); !ok {
					t.Fatalf("public key is %T", ref.Public)
				}
			case keystore.ECDSAP256:
				if p, ok := ref.Public.(*ecdsa.PublicKey); !ok || p.Curve != elliptic.P256() {
					t.Fatalf("public key is %T", ref.Public)
				}
			}
			msg := []byte("signerd signs " + string(alg))
			sig := sign(t, s, alg, msg)
			in, _ := message(alg, msg)
			opensslVerify(t, ref.Public, alg, in, sig)

			// Generated in the token, never revealable or extractable.
			ka := tok.KeyAttributes(t, ref.ID)
			want := map[string][2]bool{
				"CKA_TOKEN": {ka.Token, true}, "CKA_PRIVATE": {ka.Private, true},
				"CKA_SENSITIVE": {ka.Sensitive, true}, "CKA_EXTRACTABLE": {ka.Extractable, false},
				"CKA_SIGN": {ka.Sign, true}, "CKA_ALWAYS_SENSITIVE": {ka.AlwaysSensitive, true},
				"CKA_NEVER_EXTRACTABLE": {ka.NeverExtractable, true}, "CKA_LOCAL": {ka.Local, true},
			}
			for name, got := range want {
				if got[0] != got[1] {
					t.Errorf("%s = %v, want %v", name, got[0], got[1])
				}
			}
			checkSignOnly(t, tok, ref.ID)
			sensitive, extractable, private, token := tok.PrivateKeyAttributes(t, ref.ID)
			if !sensitive || extractable || !private || !token {
				t.Errorf("PrivateKeyAttributes = %v %v %v %v", sensitive, extractable, private, token)
			}
			err := tok.ReadPrivateValue(t, ref.ID)
			if !errors.Is(err, p11.Error(p11.CKR_ATTRIBUTE_SENSITIVE)) || !errors.Is(err, errdefs.ErrPermissionDenied) {
				t.Errorf("reading CKA_VALUE: %v, want CKR_ATTRIBUTE_SENSITIVE", err)
			}
		})
	}
}

func TestCreateKeyRefusals(t *testing.T) {
	tok := softhsm.NewToken(t)
	ks := open(t, tok)
	ctx := context.Background()
	ref, _ := createKey(t, ks, keystore.Ed25519)
	tests := []struct {
		name       string
		req        keystore.CreateKeyRequest
		wantErr    error
		wantReason errdefs.Reason
	}{
		{"duplicate ID, same algorithm", keystore.CreateKeyRequest{ID: ref.ID, Algorithm: keystore.Ed25519}, errdefs.ErrAlreadyExists, errdefs.ReasonKeyExists},
		{"duplicate ID, other algorithm", keystore.CreateKeyRequest{ID: ref.ID, Algorithm: keystore.ECDSAP256}, errdefs.ErrAlreadyExists, errdefs.ReasonKeyExists},
		{"no ID", keystore.CreateKeyRequest{Algorithm: keystore.Ed25519}, errdefs.ErrInvalidArgument, ""},
		{"unknown algorithm", keystore.CreateKeyRequest{ID: newID(t), Algorithm: "rsa-2048"}, errdefs.ErrInvalidArgument, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ks.CreateKey(ctx, tt.req)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("CreateKey: %v, want %v", err, tt.wantErr)
			}
			if got := errdefs.ReasonOf(err); got != tt.wantReason {
				t.Errorf("reason %q, want %q", got, tt.wantReason)
			}
		})
	}
}

func TestSignerRefusals(t *testing.T) {
	tok := softhsm.NewToken(t)
	ks := open(t, tok)
	ctx := context.Background()
	ed, _ := createKey(t, ks, keystore.Ed25519)
	ec, _ := createKey(t, ks, keystore.ECDSAP256)
	otherEd, _, _ := ed25519.GenerateKey(rand.Reader)
	otherEC, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)

	tests := []struct {
		name       string
		ref        keystore.KeyRef
		wantErr    error
		wantReason errdefs.Reason
	}{
		{"ed25519 not found", keystore.KeyRef{ID: newID(t), Algorithm: keystore.Ed25519, Public: ed.Public},
			errdefs.ErrNotFound, errdefs.ReasonKeyNotInToken},
		{"ecdsa not found", keystore.KeyRef{ID: newID(t), Algorithm: keystore.ECDSAP256, Public: ec.Public},
			errdefs.ErrNotFound, errdefs.ReasonKeyNotInToken},
		{"ed25519 other public key", keystore.KeyRef{ID: ed.ID, Algorithm: keystore.Ed25519, Public: otherEd},
			errdefs.ErrFailedPrecondition, errdefs.ReasonKeyMismatch},
		{"ecdsa other public key", keystore.KeyRef{ID: ec.ID, Algorithm: keystore.ECDSAP256, Public: &otherEC.PublicKey},
			errdefs.ErrFailedPrecondition, errdefs.ReasonKeyMismatch},
		{"ed25519 ref to an ecdsa key", keystore.KeyRef{ID: ec.ID, Algorithm: keystore.Ed25519, Public: ed.Public},
			errdefs.ErrFailedPrecondition, errdefs.ReasonWrongAlgorithm},
		{"ecdsa ref to an ed25519 key", keystore.KeyRef{ID: ed.ID, Algorithm: keystore.ECDSAP256, Public: ec.Public},
			errdefs.ErrFailedPrecondition, errdefs.ReasonWrongAlgorithm},
		{"public key of the wrong type", keystore.KeyRef{ID: ed.ID, Algorithm: keystore.Ed25519, Public: ec.Public},
			errdefs.ErrInvalidArgument, ""},
		{"no public key", keystore.KeyRef{ID: ec.ID, Algorithm: keystore.ECDSAP256},
			errdefs.ErrInvalidArgument, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := ks.Signer(ctx, tt.ref)
			if err == nil {
				t.Fatalf("Signer returned %T", s)
			}
			t.Log(err)
			if !errors.Is(err, tt.wantErr) {
				t.Errorf("error wraps the wrong kind, want %v", tt.wantErr)
			}
			if got := errdefs.ReasonOf(err); got != tt.wantReason {
				t.Errorf("reason %q, want %q", got, tt.wantReason)
			}
		})
	}

	// A mismatch is not cached: the right ref still works afterwards, and
	// a wrong ref is refused even once the key is cached.
	for _, ref := range []keystore.KeyRef{ed, ec} {
		s, err := ks.Signer(ctx, ref)
		if err != nil {
			t.Fatalf("Signer(%s) after refusals: %v", ref.Algorithm, err)
		}
		sign(t, s, ref.Algorithm, []byte("ok"))
	}
	if _, err := ks.Signer(ctx, keystore.KeyRef{ID: ed.ID, Algorithm: keystore.Ed25519, Public: otherEd}); errdefs.ReasonOf(err) != errdefs.ReasonKeyMismatch {
		t.Errorf("cached key, other public key: %v, want KEY_MISMATCH", err)
	}
}

// Another private key put under a key's CKA_ID sits beside a public key
// that is still the recorded one: only the signature check at lookup can
// tell, and it must refuse.
func TestSwappedPrivateKey(t *testing.T) {
	tok := softhsm.NewToken(t)
	ks := open(t, tok)
	ctx := context.Background()
	for _, alg := range algorithms {
		t.Run(string(alg), func(t *testing.T) {
			victim, _ := createKey(t, ks, alg)
			if err := pkcs11.ReplacePrivateKey(ks, victim.ID, alg == keystore.ECDSAP256); err != nil {
				t.Fatal(err)
			}
			pkcs11.ForgetKeys(ks)
			_, err := ks.Signer(ctx, victim)
			if errdefs.ReasonOf(err) != errdefs.ReasonKeyMismatch || !errors.Is(err, errdefs.ErrFailedPrecondition) {
				t.Fatalf("Signer: %v, want KEY_MISMATCH", err)
			}
			t.Log(err)
		})
	}
}

func TestSignOpts(t *testing.T) {
	tok := softhsm.NewToken(t)
	ks := open(t, tok)
	_, ed := createKey(t, ks, keystore.Ed25519)
	_, ec := createKey(t, ks, keystore.ECDSAP256)
	digest := make([]byte, 32)
	tests := []struct {
		name    string
		signer  crypto.Signer
		in      []byte
		opts    crypto.SignerOpts
		wantErr error
	}{
		{"ed25519 plain", ed, []byte("m"), crypto.Hash(0), nil},
		{"ed25519 empty Options", ed, []byte("m"), &ed25519.Options{}, nil},
		{"ed25519 nil opts", ed, []byte("m"), nil, nil},
		{"ed25519ph", ed, digest[:64-32], crypto.SHA512, errdefs.ErrInvalidArgument},
		{"ed25519ph Options", ed, digest, &ed25519.Options{Hash: crypto.SHA512}, errdefs.ErrInvalidArgument},
		{"ed25519ctx", ed, []byte("m"), &ed25519.Options{Context: "ctx"}, errdefs.ErrInvalidArgument},
		{"ecdsa sha256", ec, digest, crypto.SHA256, nil},
		{"ecdsa no hash", ec, digest, crypto.Hash(0), errdefs.ErrInvalidArgument},
		{"ecdsa nil opts", ec, digest, nil, errdefs.ErrInvalidArgument},
		{"ecdsa digest of the wrong length", ec, digest[:20], crypto.SHA256, errdefs.ErrInvalidArgument},
		{"ecdsa unknown hash", ec, digest, crypto.Hash(200), errdefs.ErrInvalidArgument},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := tt.signer.Sign(nil, tt.in, tt.opts)
			if tt.wantErr == nil && err != nil || tt.wantErr != nil && !errors.Is(err, tt.wantErr) {
				t.Fatalf("Sign: %v, want %v", err, tt.wantErr)
			}
		})
	}
}

// TestKeysFrozen: a caller holding the PIN cannot turn one of our signing
// keys into a decryption key, neither by changing it nor by copying it
// with the attribute changed: the token refuses both (CKA_MODIFIABLE and
// CKA_COPYABLE are false), for generated and imported keys alike.
func TestKeysFrozen(t *testing.T) {
	tok := softhsm.NewToken(t)
	ks := open(t, tok)
	var ids [][]byte
	for _, alg := range algorithms {
		ref, _ := createKey(t, ks, alg)
		ids = append(ids, ref.ID)
	}
	id := newID(t)
	seed := make([]byte, ed25519.SeedSize)
	if _, err := ks.ImportKey(context.Background(), keystore.ImportKeyRequest{ID: id, Label: "imported", Algorithm: keystore.Ed25519, Private: ed25519.NewKeyFromSeed(seed)}); err != nil {
		t.Fatalf("ImportKey: %v", err)
	}
	ids = append(ids, id)
	for _, id := range ids {
		setErr, copyErr := pkcs11.TryLoosen(ks, id)
		if setErr == nil || !errors.Is(copyErr, p11.Error(p11.CKR_ACTION_PROHIBITED)) {
			// CKR_ACTION_PROHIBITED: refused as not copyable at all
			// (a copyable but unmodifiable key is refused for the
			// attribute, CKR_ATTRIBUTE_READ_ONLY).
			t.Fatalf("key %x: making it decrypt by C_SetAttributeValue: %v; by copying it: %v; want both refused, the copy CKR_ACTION_PROHIBITED", id, setErr, copyErr)
		}
		if ka := tok.KeyAttributes(t, id); ka.Decrypt {
			t.Fatalf("key %x decrypts after the refusals", id)
		}
	}
}
