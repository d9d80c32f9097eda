package auditlog

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/signerd/signerd/internal/errdefs"
	"github.com/signerd/signerd/internal/store"
)

// TestCheckpointMessageKnownAnswer pins the canonical encoding. The
// expected bytes and digest were computed independently with Python:
//
//	def field(b): return struct.pack('>I', len(b)) + b
//	m = field(b'signerd-audit-checkpoint-v1') + struct.pack('>Q', 7) + field(b'\x11'*32)
//	m += field(b'2025-01-02T03:04:05.000000006Z') + field(b'ab')
//	hashlib.sha256(m).hexdigest()
func TestCheckpointMessageKnownAnswer(t *testing.T) {
	c := store.Checkpoint{
		Seq:            7,
		Hash:           bytes.Repeat([]byte{0x11}, 32),
		Time:           time.Date(2025, 1, 2, 4, 4, 5, 6, time.FixedZone("CET", 3600)), // encoded in UTC
		KeyFingerprint: "ab",
		Signature:      []byte("not part of the message"),
	}
	const wantMsg = "0000001b7369676e6572642d61756469742d636865636b706f696e742d7631" +
		"0000000000000007" +
		"00000020" + "1111111111111111111111111111111111111111111111111111111111111111" +
		"0000001e" + "323032352d30312d30325430333a30343a30352e3030303030303030365a" +
		"00000002" + "6162"
	if got := hex.EncodeToString(CheckpointMessage(c)); got != wantMsg {
		t.Fatalf("CheckpointMessage =\n%s\nwant\n%s", got, wantMsg)
	}
	if got := hex.EncodeToString(CheckpointDigest(c)); got != "345aac7d7d62ce33c0d1bef279fe63f2d9695b8591951536a6ad34e49bbd3c97" {
		t.Fatalf("CheckpointDigest = %s", got)
	}
}

// Version 2 (with a state digest) pins its own value, computed with
// Python's hashlib; stripping the digest from a signed v2 checkpoint makes
// the signature fail.
func TestCheckpointMessageV2(t *testing.T) {
	c := store.Checkpoint{
		Seq: 7, Hash: bytes.Repeat([]byte{0x11}, 32), Time: time.Date(2025, 1, 2, 3, 4, 5, 6, time.UTC),
		KeyFingerprint: "ab", StateDigest: bytes.Repeat([]byte{0x22}, 32),
	}
	if got := hex.EncodeToString(CheckpointDigest(c)); got != "73f8e2bfe9048538ca61c5f44dd639c656e3542d5811695840983aeb8b72890d" {
		t.Fatalf("CheckpointDigest v2 = %s", got)
	}
	k := newKey(t)
	c.KeyFingerprint = Fingerprint(&k.PublicKey)
	signed, err := SignCheckpoint(k, c)
	if err != nil {
		t.Fatal(err)
	}
	if err := VerifyCheckpoint(&k.PublicKey, signed); err != nil {
		t.Fatalf("v2 checkpoint: %v", err)
	}
	for name, edit := range map[string]func(*store.Checkpoint){
		"digest stripped": func(c *store.Checkpoint) { c.StateDigest = nil },
		"digest changed":  func(c *store.Checkpoint) { c.StateDigest = bytes.Repeat([]byte{0x23}, 32) },
	} {
		forged := signed
		edit(&forged)
		if err := VerifyCheckpoint(&k.PublicKey, forged); err == nil {
			t.Errorf("%s: the checkpoint still verifies", name)
		}
	}
}

func newKey(t *testing.T) *ecdsa.PrivateKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func pubPEM(t *testing.T, pub any) []byte {
	t.Helper()
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
}

func TestSignAndVerifyCheckpoint(t *testing.T) {
	k := newKey(t)
	base := store.Checkpoint{Seq: 3, Hash: bytes.Repeat([]byte{2}, 32), Time: time.Now().UTC(), KeyFingerprint: Fingerprint(&k.PublicKey)}
	c, err := SignCheckpoint(k, base)
	if err != nil {
		t.Fatal(err)
	}
	if err := VerifyCheckpoint(&k.PublicKey, c); err != nil {
		t.Fatalf("VerifyCheckpoint of a fresh checkpoint: %v", err)
	}
	other := newKey(t)
	for _, tt := range []struct {
		name string
		edit func(*store.Checkpoint)
		pub  *ecdsa.PublicKey
		kind string
	}{
		{"seq", func(c *store.Checkpoint) { c.Seq++ }, &k.PublicKey, store.ChainBadCheckpoint},
		{"hash", func(c *store.Checkpoint) { c.Hash = bytes.Repeat([]byte{3}, 32) }, &k.PublicKey, store.ChainBadCheckpoint},
		{"time", func(c *store.Checkpoint) { c.Time = c.Time.Add(time.Nanosecond) }, &k.PublicKey, store.ChainBadCheckpoint},
		{"signature", func(c *store.Checkpoint) { c.Signature = append([]byte(nil), c.Signature[:len(c.Signature)-1]...) }, &k.PublicKey, store.ChainBadCheckpoint},
		{"fingerprint", func(c *store.Checkpoint) { c.KeyFingerprint = Fingerprint(&other.PublicKey) }, &k.PublicKey, store.ChainWrongCheckpointKey},
		{"another key", func(*store.Checkpoint) {}, &other.PublicKey, store.ChainWrongCheckpointKey},
	} {
		t.Run(tt.name, func(t *testing.T) {
			e := c
			e.Hash, e.Signature = bytes.Clone(c.Hash), bytes.Clone(c.Signature)
			tt.edit(&e)
			var ce *store.ChainError
			if err := VerifyCheckpoint(tt.pub, e); !errors.As(err, &ce) || ce.Kind != tt.kind || ce.Seq != e.Seq {
				t.Fatalf("VerifyCheckpoint = %v, want %q at seq %d", err, tt.kind, e.Seq)
			}
		})
	}
	if _, err := SignCheckpoint(ed25519.NewKeyFromSeed(make([]byte, 32)), base); err == nil {
		t.Fatal("SignCheckpoint accepted an Ed25519 key")
	}
}

// TestCheckpointVerifiesWithOpenSSL checks the documented openssl command
// against a checkpoint: an independent implementation of the signature.
func TestCheckpointVerifiesWithOpenSSL(t *testing.T) {
	if _, err := exec.LookPath("openssl"); err != nil {
		t.Fatalf("openssl not found (%v): `make deps` installs it; this test checks checkpoints against an independent implementation", err)
	}
	k := newKey(t)
	c, err := SignCheckpoint(k, store.Checkpoint{Seq: 9, Hash: bytes.Repeat([]byte{9}, 32), Time: time.Now(), KeyFingerprint: Fingerprint(&k.PublicKey)})
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	files := map[string][]byte{"msg.bin": CheckpointMessage(c), "sig.der": c.Signature, "pub.pem": pubPEM(t, &k.PublicKey)}
	for name, b := range files {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	out, err := exec.Command("openssl", "dgst", "-sha256", "-verify", filepath.Join(dir, "pub.pem"),
		"-signature", filepath.Join(dir, "sig.der"), filepath.Join(dir, "msg.bin")).CombinedOutput()
	if err != nil || !bytes.Contains(out, []byte("Verified OK")) {
		t.Fatalf("openssl: %v\n%s", err, out)
	}
}

func TestParsePublicKeyPEM(t *testing.T) {
	k := newKey(t)
	pub, err := ParsePublicKeyPEM(pubPEM(t, &k.PublicKey))
	if err != nil || !pub.Equal(&k.PublicKey) {
		t.Fatalf("ParsePublicKeyPEM = %v, %v", pub, err)
	}
	p384, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	edPub := ed25519.NewKeyFromSeed(make([]byte, 32)).Public()
	for name, data := range map[string][]byte{
		"garbage":     []byte("not a pem"),
		"private key": pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: []byte{1}}),
		"bad der":     pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: []byte{1}}),
		"ed25519":     pubPEM(t, edPub),
		"p384":        pubPEM(t, &p384.PublicKey),
	} {
		if _, err := ParsePublicKeyPEM(data); !errors.Is(err, errdefs.ErrInvalidArgument) {
			t.Errorf("%s: %v, want ErrInvalidArgument", name, err)
		}
	}
}
