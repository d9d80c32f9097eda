package eccheck

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/sha512"
	"math/big"
	"sync"
	"testing"
)

func newKey(t testing.TB) (*ecdsa.PrivateKey, *Verifier) {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	v, err := NewVerifier(&k.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	return k, v
}

// same fails the test unless v answers as crypto/ecdsa.Verify does, and
// so does a Verifier of the same key on the generic implementation (on
// amd64 v runs the assembly one).
func same(t *testing.T, what string, v *Verifier, pub *ecdsa.PublicKey, hash []byte, r, s *big.Int) bool {
	t.Helper()
	want := ecdsa.Verify(pub, hash, r, s)
	if got := v.Verify(hash, r, s); got != want {
		t.Fatalf("%s: Verify = %v, crypto/ecdsa.Verify = %v (hash %x, r %v, s %v)", what, got, want, hash, r, s)
	}
	if got := genericOf(t, v).Verify(hash, r, s); got != want {
		t.Fatalf("%s: generic Verify = %v, crypto/ecdsa.Verify = %v (hash %x, r %v, s %v)", what, got, want, hash, r, s)
	}
	return want
}

var generics sync.Map // *Verifier → *Verifier on the generic table

// genericOf returns a Verifier of v's key on the generic implementation.
func genericOf(t testing.TB, v *Verifier) *Verifier {
	if g, ok := generics.Load(v); ok {
		return g.(*Verifier)
	}
	raw, err := v.pub.Bytes()
	if err != nil {
		t.Fatal(err)
	}
	g := &Verifier{pub: v.pub, impl: newTable(raw)}
	generics.Store(v, g)
	return g
}

func TestVerifyAgreesWithCryptoECDSA(t *testing.T) {
	k, v := newKey(t)
	_, other := newKey(t)
	nMinus1 := new(big.Int).Sub(n, big.NewInt(1))
	for i := range 200 {
		msg := []byte{byte(i), byte(i >> 8)}
		h256 := sha256.Sum256(msg)
		h512 := sha512.Sum512(msg)
		for _, hash := range [][]byte{h256[:], h512[:], h256[:20], nil, make([]byte, 32), n.Bytes(), nMinus1.Bytes()} {
			r, s, err := ecdsa.Sign(rand.Reader, k, hash)
			if err != nil {
				t.Fatal(err)
			}
			if !same(t, "valid signature", v, &k.PublicKey, hash, r, s) {
				t.Fatalf("a signature crypto/ecdsa made does not verify (hash %x)", hash)
			}
			// The other key's verifier refuses it, as crypto/ecdsa does.
			if other.Verify(hash, r, s) {
				t.Fatal("another key's verifier accepted the signature")
			}
			negS := new(big.Int).Sub(n, s) // (r, n−s) is valid too
			same(t, "s negated", v, &k.PublicKey, hash, r, negS)
			flipped := append([]byte(nil), hash...)
			if len(flipped) > 0 {
				flipped[len(flipped)-1] ^= 1
				same(t, "digest changed", v, &k.PublicKey, flipped, r, s)
			}
			same(t, "r+1", v, &k.PublicKey, hash, new(big.Int).Add(r, big.NewInt(1)), s)
			same(t, "s+1", v, &k.PublicKey, hash, r, new(big.Int).Add(s, big.NewInt(1)))
			same(t, "r+n", v, &k.PublicKey, hash, new(big.Int).Add(r, n), s)
			same(t, "s+n", v, &k.PublicKey, hash, r, new(big.Int).Add(s, n))
			same(t, "r and s swapped", v, &k.PublicKey, hash, s, r)
		}
	}
}

func TestVerifyEdgeScalars(t *testing.T) {
	k, v := newKey(t)
	hash := sha256.Sum256([]byte("edge"))
	r, s, err := ecdsa.Sign(rand.Reader, k, hash[:])
	if err != nil {
		t.Fatal(err)
	}
	nMinus1 := new(big.Int).Sub(n, big.NewInt(1))
	big2_256 := new(big.Int).Lsh(big.NewInt(1), 256)
	for _, x := range []*big.Int{nil, big.NewInt(0), big.NewInt(-1), new(big.Int).Neg(r), big.NewInt(1), big.NewInt(2), nMinus1, n, big2_256, new(big.Int).Add(big2_256, r)} {
		if x == nil {
			if v.Verify(hash[:], nil, s) || v.Verify(hash[:], r, nil) {
				t.Fatal("nil r or s accepted")
			}
			continue
		}
		same(t, "edge r", v, &k.PublicKey, hash[:], x, s)
		same(t, "edge s", v, &k.PublicKey, hash[:], r, x)
		same(t, "edge r and s", v, &k.PublicKey, hash[:], x, x)
	}
}

func TestNewVerifierRefusesOtherCurves(t *testing.T) {
	k, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := NewVerifier(&k.PublicKey); err == nil {
		t.Fatal("P-384 key accepted")
	}
	if _, err := NewVerifier(nil); err == nil {
		t.Fatal("nil key accepted")
	}
	p := *(&ecdsa.PublicKey{Curve: elliptic.P256(), X: big.NewInt(1), Y: big.NewInt(1)})
	if _, err := NewVerifier(&p); err == nil {
		t.Fatal("a point off the curve accepted")
	}
}

// FuzzVerify feeds arbitrary digests and scalars, and mutations of a valid
// signature, to both verifiers.
func FuzzVerify(f *testing.F) {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		f.Fatal(err)
	}
	v, err := NewVerifier(&k.PublicKey)
	if err != nil {
		f.Fatal(err)
	}
	hash := sha256.Sum256([]byte("fuzz"))
	r, s, err := ecdsa.Sign(rand.Reader, k, hash[:])
	if err != nil {
		f.Fatal(err)
	}
	f.Add(hash[:], r.Bytes(), s.Bytes(), uint8(0))
	f.Add([]byte{}, []byte{1}, []byte{1}, uint8(1))
	f.Add(n.Bytes(), n.Bytes(), n.Bytes(), uint8(2))
	f.Fuzz(func(t *testing.T, h, rb, sb []byte, mode uint8) {
		rr, ss := new(big.Int).SetBytes(rb), new(big.Int).SetBytes(sb)
		if mode%2 == 1 { // near the valid signature: xor the fuzz bytes into it
			rr = new(big.Int).Xor(r, rr)
			ss = new(big.Int).Xor(s, ss)
			h = append(append([]byte(nil), hash[:]...), h...)[:len(hash)]
		}
		same(t, "fuzz", v, &k.PublicKey, h, rr, ss)
	})
}

func BenchmarkVerify(b *testing.B) {
	k, v := newKey(b)
	hash := sha256.Sum256([]byte("bench"))
	r, s, err := ecdsa.Sign(rand.Reader, k, hash[:])
	if err != nil {
		b.Fatal(err)
	}
	b.Run("eccheck", func(b *testing.B) {
		for b.Loop() {
			if !v.Verify(hash[:], r, s) {
				b.Fatal("does not verify")
			}
		}
	})
	b.Run("crypto-ecdsa", func(b *testing.B) {
		for b.Loop() {
			if !ecdsa.Verify(&k.PublicKey, hash[:], r, s) {
				b.Fatal("does not verify")
			}
		}
	})
	b.Run("NewVerifier", func(b *testing.B) {
		for b.Loop() {
			if _, err := NewVerifier(&k.PublicKey); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// TestVerifierKeepsItsOwnKey: the caller's key changing afterwards changes
// neither what is verified nor the key reported.
func TestVerifierKeepsItsOwnKey(t *testing.T) {
	k, v := newKey(t)
	want := k.PublicKey.X.String()
	hash := sha256.Sum256([]byte("copy"))
	r, s, err := ecdsa.Sign(rand.Reader, k, hash[:])
	if err != nil {
		t.Fatal(err)
	}
	k.PublicKey.X.SetInt64(1)
	if got := v.PublicKey().X.String(); got != want {
		t.Fatalf("PublicKey().X = %s after the caller's key changed, want %s", got, want)
	}
	v.PublicKey().X.SetInt64(2)
	if !v.Verify(hash[:], r, s) || v.PublicKey().X.String() != want {
		t.Fatal("changing a returned key changed the verifier")
	}
}
