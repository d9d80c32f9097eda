package service

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"testing"
	"time"

	"github.com/signerd/signerd/internal/errdefs"
	"github.com/signerd/signerd/internal/keystore"
	"github.com/signerd/signerd/internal/pkgsig"
)

func genKey(t *testing.T) (ed25519.PublicKey, ed25519.PrivateKey) {
	t.Helper()
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return pub, priv
}

// TestVerifyTablesAnswerAsCryptoEd25519: before and after a key has a
// table, verify answers what crypto/ed25519.Verify answers, for valid
// signatures, corrupted ones and another key's.
func TestVerifyTablesAnswerAsCryptoEd25519(t *testing.T) {
	v := newVerifyTables()
	pub, priv := genKey(t)
	otherPub, _ := genKey(t)
	for i := range 3 * tableAfter {
		msg := binary.BigEndian.AppendUint64(nil, uint64(i))
		sig := ed25519.Sign(priv, msg)
		bad := append([]byte(nil), sig...)
		bad[i%64] ^= 1 << (i % 8)
		cases := []struct {
			pub      ed25519.PublicKey
			msg, sig []byte
		}{{pub, msg, sig}, {pub, msg, bad}, {otherPub, msg, sig}, {pub, append(msg, 0), sig}}
		for _, c := range cases {
			if got, want := v.verify(c.pub, c.msg, c.sig), ed25519.Verify(c.pub, c.msg, c.sig); got != want {
				t.Fatalf("verification %d (table held: %v): verify = %v, crypto/ed25519 = %v", i, v.held(c.pub), got, want)
			}
		}
	}
	if !v.held(pub) {
		t.Fatalf("no table for a key verified %d times", 3*tableAfter)
	}
	if v.verify(pub[:31], []byte("m"), make([]byte, 64)) {
		t.Fatal("a 31-byte key verified")
	}
}

// TestVerifyTablesBounded: however many keys verify, at most maxTableKeys
// tables are held (each would otherwise keep 655 KiB).
func TestVerifyTablesBounded(t *testing.T) {
	v := newVerifyTables()
	var keys []ed25519.PublicKey
	for range maxTableKeys + 4 {
		pub, priv := genKey(t)
		keys = append(keys, pub)
		msg := []byte("m")
		sig := ed25519.Sign(priv, msg)
		for range tableAfter {
			if !v.verify(pub, msg, sig) {
				t.Fatal("valid signature refused")
			}
		}
	}
	held := 0
	for _, k := range keys {
		if v.held(k) {
			held++
		}
	}
	if held == 0 || held > maxTableKeys {
		t.Fatalf("%d tables held for %d keys, want 1..%d", held, len(keys), maxTableKeys)
	}
}

// TestVerifyRefusesBadSignatureOnTable: Verify of fresh documents by a
// trusted key, past the point where its table is built, still refuses a
// corrupted document as INVALID_SIGNATURE.
func TestVerifyRefusesBadSignatureOnTable(t *testing.T) {
	f := newFixture(t)
	f.createKey(t, "rel", keystore.Ed25519)
	f.trust(t, "acme", "rel")
	k, err := f.svc.GetKey(f.ctx, "rel")
	if err != nil {
		t.Fatal(err)
	}
	pub, err := ParsePublicKeyDER(k.Versions[0].PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	var doc []byte
	var digest [32]byte
	for i := range tableAfter + 2 {
		digest = sha256.Sum256(binary.BigEndian.AppendUint64(nil, uint64(i)))
		out, err := f.svc.Sign(f.ctx, SignInput{KeyName: "rel", Digest: digest[:], ArtifactName: "p"})
		if err != nil {
			t.Fatal(err)
		}
		doc = out.Document
		if _, err := f.svc.Verify(f.ctx, VerifyInput{Org: "acme", Digest: digest[:], Document: doc}); err != nil {
			t.Fatalf("Verify %d: %v", i, err)
		}
	}
	if !f.svc.tables.held(pub.(ed25519.PublicKey)) {
		t.Fatalf("no table after %d verifications", tableAfter+2)
	}
	sig, err := pkgsig.Parse(doc)
	if err != nil {
		t.Fatal(err)
	}
	sig.Sig[10] ^= 0x40
	bad := pkgsig.NewDocument(digest, pub.(ed25519.PublicKey), sig.Sig, time.Now()).Encode()
	_, err = f.svc.Verify(f.ctx, VerifyInput{Org: "acme", Digest: digest[:], Document: bad})
	var ve *errdefs.VerificationError
	if !errors.As(err, &ve) || ve.Reason != errdefs.ReasonInvalidSignature {
		t.Fatalf("corrupted document: %v, want INVALID_SIGNATURE", err)
	}
}
