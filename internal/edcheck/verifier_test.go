package edcheck

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha512"
	"encoding/hex"
	"math/big"
	mrand "math/rand/v2"
	"testing"

	"filippo.io/edwards25519"
)

// groupOrder is ℓ = 2^252 + 27742317777372353535851937790883648493.
var groupOrder, _ = new(big.Int).SetString("7237005577332262213973186563042994240857116359379907606001950938285454250989", 10)

// smallOrder are the canonical encodings of the eight points of order
// dividing 8 (the torsion subgroup), as listed in "Taming the many
// EdDSAs" (Chalkias et al., 2020).
var smallOrder = []string{
	"0100000000000000000000000000000000000000000000000000000000000000", // identity
	"ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f", // order 2
	"0000000000000000000000000000000000000000000000000000000000000000", // order 4
	"0000000000000000000000000000000000000000000000000000000000000080", // order 4
	"26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05", // order 8
	"26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc85", // order 8
	"c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a", // order 8
	"c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac03fa", // order 8
}

func mustHex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestSmallOrderPointsAreTorsion(t *testing.T) {
	for _, s := range smallOrder {
		p, err := new(edwards25519.Point).SetBytes(mustHex(t, s))
		if err != nil {
			t.Fatalf("%s: %v", s, err)
		}
		if new(edwards25519.Point).MultByCofactor(p).Equal(edwards25519.NewIdentityPoint()) != 1 {
			t.Errorf("%s: [8]P is not the identity", s)
		}
	}
}

// scalarLE turns a big integer below 2^256 into 32 little-endian bytes.
func scalarLE(x *big.Int) []byte {
	be := x.FillBytes(make([]byte, 32))
	for i, j := 0, 31; i < j; i, j = i+1, j-1 {
		be[i], be[j] = be[j], be[i]
	}
	return be
}

func leInt(b []byte) *big.Int {
	be := make([]byte, len(b))
	for i := range b {
		be[len(b)-1-i] = b[i]
	}
	return new(big.Int).SetBytes(be)
}

// rawSign signs msg with secret scalar a and nonce r as Ed25519 does, but
// with R replaced by R + shift before hashing: the fault that a
// cofactored (or a randomized batch) check lets through and a
// cofactorless single check refuses.
func rawSign(t testing.TB, a, r *edwards25519.Scalar, shift *edwards25519.Point, msg []byte) (pub, sig []byte) {
	t.Helper()
	A := new(edwards25519.Point).ScalarBaseMult(a)
	R := new(edwards25519.Point).ScalarBaseMult(r)
	if shift != nil {
		R.Add(R, shift)
	}
	pub = A.Bytes()
	h := sha512.New()
	h.Write(R.Bytes())
	h.Write(pub)
	h.Write(msg)
	k, err := edwards25519.NewScalar().SetUniformBytes(h.Sum(nil))
	if err != nil {
		t.Fatal(err)
	}
	S := edwards25519.NewScalar().MultiplyAdd(k, a, r)
	return pub, append(R.Bytes(), S.Bytes()...)
}

func randScalar(t testing.TB) *edwards25519.Scalar {
	t.Helper()
	var b [64]byte
	if _, err := rand.Read(b[:]); err != nil {
		t.Fatal(err)
	}
	s, err := edwards25519.NewScalar().SetUniformBytes(b[:])
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func flip(b []byte, i int) []byte {
	c := append([]byte(nil), b...)
	c[i/8] ^= 1 << (i % 8)
	return c
}

// TestVerifyMatchesCryptoEd25519 is the table the acceptance rule is held
// to: for each case, Verifier.Verify must give exactly
// crypto/ed25519.Verify's answer, and the answer the case expects.
func TestVerifyMatchesCryptoEd25519(t *testing.T) {
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	otherPub, _, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	msg := []byte("0123456789abcdef0123456789abcdef")
	sig := ed25519.Sign(priv, msg)

	// S + ℓ: the same signature with a non-canonical S (still below
	// 2^253, so the high-bits test alone does not catch it).
	sPlusL := append(append([]byte(nil), sig[:32]...), scalarLE(new(big.Int).Add(leInt(sig[32:]), groupOrder))...)

	// A mixed-order R: R + T for a point T of order 8, with S computed
	// over the shifted R.
	a, r := randScalar(t), randScalar(t)
	order8, err := new(edwards25519.Point).SetBytes(mustHex(t, smallOrder[4]))
	if err != nil {
		t.Fatal(err)
	}
	order2, err := new(edwards25519.Point).SetBytes(mustHex(t, smallOrder[1]))
	if err != nil {
		t.Fatal(err)
	}
	shiftPub, shiftSig := rawSign(t, a, r, order8, msg)
	shift2Pub, shift2Sig := rawSign(t, a, r, order2, msg)
	rawPub, rawSig := rawSign(t, a, r, nil, msg)

	// A key of small order: the identity accepts R = identity, S = 0 for
	// every message under crypto/ed25519's rule; so must we.
	identity := mustHex(t, smallOrder[0])
	idSig := append(append([]byte(nil), identity...), make([]byte, 32)...)
	order4Key := mustHex(t, smallOrder[2])

	// A key with a torsion component: A + T (signatures by a do not verify
	// under it, but the two checks must agree).
	mixedKey := new(edwards25519.Point).Add(new(edwards25519.Point).ScalarBaseMult(a), order8).Bytes()

	// Non-canonical encodings: y + p for y = 1 (the identity) as R, and
	// as the key.
	nonCanonicalIdentity := mustHex(t, "eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f")
	nonCanonR := append(append([]byte(nil), nonCanonicalIdentity...), make([]byte, 32)...)

	highBits := append([]byte(nil), sig...)
	highBits[63] |= 0x80

	tests := []struct {
		name      string
		pub, sig  []byte
		msg       []byte
		wantValid bool
	}{
		{"valid", pub, sig, msg, true},
		{"valid raw", rawPub, rawSig, msg, true},
		{"wrong message", pub, sig, []byte("another message"), false},
		{"corrupted R", pub, flip(sig, 3), msg, false},
		{"corrupted R sign bit", pub, flip(sig, 255), msg, false},
		{"corrupted S", pub, flip(sig, 300), msg, false},
		{"wrong key", otherPub, sig, msg, false},
		{"non-canonical S (S+l)", pub, sPlusL, msg, false},
		{"S high bits set", pub, highBits, msg, false},
		{"short signature", pub, sig[:63], msg, false},
		{"long signature", pub, append(append([]byte(nil), sig...), 0), msg, false},
		{"R shifted by an order-8 point", shiftPub, shiftSig, msg, false},
		{"R shifted by the order-2 point", shift2Pub, shift2Sig, msg, false},
		{"small-order R, valid key", pub, append(mustHex(t, smallOrder[4]), sig[32:]...), msg, false},
		{"identity key, identity R, S=0", identity, idSig, msg, true},
		{"identity key, non-canonical identity R", identity, nonCanonR, msg, false},
		{"order-4 key, identity R, S=0", order4Key, idSig, msg, false},
		{"order-4 key, order-4 R, S=0", order4Key, append(mustHex(t, smallOrder[2]), make([]byte, 32)...), msg, false},
		{"mixed-order key", mixedKey, rawSig, msg, false},
		{"non-canonical identity key", nonCanonicalIdentity, idSig, msg, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			want := ed25519.Verify(tc.pub, tc.msg, tc.sig)
			if want != tc.wantValid {
				t.Fatalf("crypto/ed25519.Verify = %v; the case expects %v", want, tc.wantValid)
			}
			v, err := NewVerifier(tc.pub)
			if err != nil {
				t.Fatalf("NewVerifier: %v", err)
			}
			if got := v.Verify(tc.msg, tc.sig); got != want {
				t.Errorf("Verify = %v, crypto/ed25519.Verify = %v", got, want)
			}
		})
	}
}

// TestNewVerifierRefusesWhatIsNoKey: a key crypto/ed25519 cannot use (it
// panics on a wrong length, refuses every signature under 32 bytes that
// are no point) gets no Verifier, so no signature can pass with it.
func TestNewVerifierRefusesWhatIsNoKey(t *testing.T) {
	notAPoint := mustHex(t, "0200000000000000000000000000000000000000000000000000000000000000")
	if _, err := new(edwards25519.Point).SetBytes(notAPoint); err == nil {
		t.Fatal("test key decodes: pick another")
	}
	for _, k := range [][]byte{notAPoint, make([]byte, 31), make([]byte, 33)} {
		if _, err := NewVerifier(k); err == nil {
			t.Errorf("NewVerifier(%x) accepted a key crypto/ed25519 cannot use", k)
		}
		if len(k) == ed25519.PublicKeySize && ed25519.Verify(k, []byte("m"), make([]byte, 64)) {
			t.Errorf("crypto/ed25519 accepts key %x: the refusal would differ", k)
		}
	}
}

// TestVerifyProperty compares the two checks on many keys (ordinary,
// small-order and mixed-order), messages, valid signatures and single-bit
// corruptions of them, and signatures over small-order R.
func TestVerifyProperty(t *testing.T) {
	rng := mrand.New(mrand.NewPCG(1, 2))
	n := 40
	if testing.Short() {
		n = 10
	}
	var accepted, refused int
	for range n {
		pub, priv, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		keys := [][]byte{pub, mustHex(t, smallOrder[rng.IntN(len(smallOrder))])}
		for _, key := range keys {
			v, err := NewVerifier(key)
			if err != nil {
				t.Fatal(err)
			}
			for range 20 {
				msg := make([]byte, rng.IntN(64))
				for i := range msg {
					msg[i] = byte(rng.Uint32())
				}
				var sig []byte
				switch rng.IntN(3) {
				case 0:
					sig = ed25519.Sign(priv, msg)
				case 1:
					sig = flip(ed25519.Sign(priv, msg), rng.IntN(512))
				default:
					sig = append(mustHex(t, smallOrder[rng.IntN(len(smallOrder))]), make([]byte, 32)...)
					sig[32] = byte(rng.IntN(8))
				}
				want := ed25519.Verify(key, msg, sig)
				if got := v.Verify(msg, sig); got != want {
					t.Fatalf("key %x msg %x sig %x: Verify = %v, crypto/ed25519 = %v", key, msg, sig, got, want)
				}
				if want {
					accepted++
				} else {
					refused++
				}
			}
		}
	}
	if accepted == 0 || refused == 0 {
		t.Fatalf("the property test exercised one side only: %d accepted, %d refused", accepted, refused)
	}
}

func TestDigits(t *testing.T) {
	rng := mrand.New(mrand.NewPCG(3, 4))
	for range 1000 {
		var b [32]byte
		for i := range b {
			b[i] = byte(rng.Uint32())
		}
		b[31] &= 0x1f // below 2^253
		d := digits(b[:])
		sum := new(big.Int)
		for i := positions - 1; i >= 0; i-- {
			if d[i] < -half || d[i] >= half {
				t.Fatalf("digit %d = %d out of range", i, d[i])
			}
			sum.Lsh(sum, 8)
			sum.Add(sum, big.NewInt(int64(d[i])))
		}
		if sum.Cmp(leInt(b[:])) != 0 {
			t.Fatalf("digits of %x sum to %x", b, sum)
		}
	}
}

// TestShiftedRPassesTheCofactoredEquation shows why the table above holds
// the R-shifted cases: their [S]B − R − [k]A is a nonzero small-order
// point, so the cofactored equation (and, with probability up to 1/2, a
// randomized batch) accepts them, while crypto/ed25519 and Verifier refuse.
func TestShiftedRPassesTheCofactoredEquation(t *testing.T) {
	msg := []byte("m")
	for _, s := range smallOrder[1:] {
		shift, err := new(edwards25519.Point).SetBytes(mustHex(t, s))
		if err != nil {
			t.Fatal(err)
		}
		pub, sig := rawSign(t, randScalar(t), randScalar(t), shift, msg)
		A, _ := new(edwards25519.Point).SetBytes(pub)
		R, _ := new(edwards25519.Point).SetBytes(sig[:32])
		S, err := edwards25519.NewScalar().SetCanonicalBytes(sig[32:])
		if err != nil {
			t.Fatal(err)
		}
		h := sha512.Sum512(append(append(append([]byte(nil), sig[:32]...), pub...), msg...))
		k, _ := edwards25519.NewScalar().SetUniformBytes(h[:])
		p := new(edwards25519.Point).ScalarBaseMult(S)
		p.Subtract(p, R)
		p.Subtract(p, new(edwards25519.Point).ScalarMult(k, A))
		id := edwards25519.NewIdentityPoint()
		if p.Equal(id) == 1 || new(edwards25519.Point).MultByCofactor(p).Equal(id) != 1 {
			t.Fatalf("shift %s: [S]B − R − [k]A is not a nonzero small-order point", s)
		}
		v, err := NewVerifier(pub)
		if err != nil {
			t.Fatal(err)
		}
		if v.Verify(msg, sig) || ed25519.Verify(pub, msg, sig) {
			t.Fatalf("shift %s: a check accepted R + T (Verifier %v, crypto/ed25519 %v)", s, v.Verify(msg, sig), ed25519.Verify(pub, msg, sig))
		}
	}
}
