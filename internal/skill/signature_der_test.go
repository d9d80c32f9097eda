package skill

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	cryptorand "crypto/rand"
	"math/rand/v2"
	"path/filepath"
	"strconv"
	"testing"
)

// derCase is one input of the differential tests and a seed of the fuzz
// target.
type derCase struct {
	name string
	der  []byte
}

// tlv encodes tag, a minimal DER length and content.
func tlv(tag byte, content ...[]byte) []byte {
	c := bytes.Join(content, nil)
	return append(append([]byte{tag}, derLength(len(c))...), c...)
}

// tlvWithLength encodes tag, the given length bytes (minimal or not) and
// content.
func tlvWithLength(tag byte, length []byte, content ...[]byte) []byte {
	return append(append([]byte{tag}, length...), bytes.Join(content, nil)...)
}

func derLength(n int) []byte {
	if n < 0x80 {
		return []byte{byte(n)}
	}
	var b []byte
	for ; n > 0; n >>= 8 {
		b = append([]byte{byte(n)}, b...)
	}
	return append([]byte{0x80 | byte(len(b))}, b...)
}

// integer is an INTEGER element with the given content bytes as they are.
func integer(content ...byte) []byte { return tlv(0x02, content) }

// magnitude is n bytes, the first first and the rest 0xa5.
func magnitude(n int, first byte) []byte {
	b := bytes.Repeat([]byte{0xa5}, n)
	if n > 0 {
		b[0] = first
	}
	return b
}

func seq(elems ...[]byte) []byte { return tlv(0x30, elems...) }

// derEdgeCases are the hand-picked inputs: canonical ones on every length
// boundary and each way of being non-canonical or malformed.
func derEdgeCases() []derCase {
	one := integer(1)
	r32 := integer(append([]byte{0}, magnitude(32, 0xc3)...)...) // 33 bytes: 0x00 needed
	s32 := integer(magnitude(32, 0x5a)...)
	p256 := seq(r32, s32)
	cases := []derCase{
		{"empty input", nil},
		{"tag only", []byte{0x30}},
		{"1,1", seq(one, one)},
		{"p256-shaped", p256},
		{"r zero", seq(integer(0), one)},
		{"s zero", seq(one, integer(0))},
		{"r empty", seq(integer(), one)},
		{"s empty", seq(one, integer())},
		{"r -1", seq(integer(0xff), one)},
		{"r -128", seq(integer(0x80), one)},
		{"s negative 32 bytes", seq(r32, integer(magnitude(32, 0xc3)...))},
		{"r needed leading zero", seq(integer(0x00, 0x80), one)},
		{"r missing needed leading zero", seq(integer(magnitude(32, 0xc3)...), s32)},
		{"r redundant leading zero", seq(integer(0x00, 0x01), one)},
		{"s redundant leading zero", seq(one, integer(0x00, 0x7f))},
		{"r two leading zeros", seq(integer(0x00, 0x00, 0x80), one)},
		{"r redundant 0xff", seq(integer(0xff, 0xff), one)},
		{"r 0xff 0x7f", seq(integer(0xff, 0x7f), one)},
		{"33-byte r, zero not needed", seq(integer(append([]byte{0}, magnitude(32, 0x43)...)...), s32)},
		{"33-byte r, no zero", seq(integer(magnitude(33, 0x01)...), s32)},
		{"sequence long form for short content", tlvWithLength(0x30, []byte{0x81, 6}, one, one)},
		{"sequence 0x82 for short content", tlvWithLength(0x30, []byte{0x82, 0, 6}, one, one)},
		{"sequence 0x84 for short content", tlvWithLength(0x30, []byte{0x84, 0, 0, 0, 6}, one, one)},
		{"integer long form for short content", seq(tlvWithLength(0x02, []byte{0x81, 1}, []byte{1}), one)},
		{"sequence length with leading zero byte", tlvWithLength(0x30, []byte{0x82, 0, 137}, r32, integer(magnitude(100, 0x11)...))},
		{"indefinite sequence", tlvWithLength(0x30, []byte{0x80}, one, one, []byte{0, 0})},
		{"indefinite integer", seq(tlvWithLength(0x02, []byte{0x80}, []byte{1, 0, 0}), one)},
		{"length 0x85", tlvWithLength(0x30, []byte{0x85, 0, 0, 0, 0, 6}, one, one)},
		{"length 0x88 overflowing", tlvWithLength(0x30, []byte{0x88, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, one, one)},
		{"length 0xff", tlvWithLength(0x30, []byte{0xff}, one, one)},
		{"length 0x83 past the end", tlvWithLength(0x30, []byte{0x83, 0xff, 0xff, 0xff}, one, one)},
		{"length 0x84 past the end", tlvWithLength(0x30, []byte{0x84, 0x7f, 0xff, 0xff, 0xff}, one, one)},
		{"sequence longer than input", tlvWithLength(0x30, []byte{7}, one, one)},
		{"sequence ends after r", tlvWithLength(0x30, []byte{3}, one, one)},
		{"integer longer than sequence", seq(one, tlvWithLength(0x02, []byte{2}, []byte{1}))},
		{"trailing 0x00", append(seq(one, one), 0)},
		{"trailing sequence", append(seq(one, one), 0x30, 0)},
		{"two signatures", append(append([]byte{}, p256...), p256...)},
		{"trailing inside sequence", seq(one, one, []byte{0})},
		{"three integers", seq(one, one, one)},
		{"one integer", seq(one)},
		{"empty sequence", seq()},
		{"nested", seq(seq(one, one))},
		{"s nested", seq(one, seq(one))},
		{"SET", tlv(0x31, one, one)},
		{"primitive SEQUENCE tag", tlv(0x10, one, one)},
		{"application tag", tlv(0x60, one, one)},
		{"high tag number form", append([]byte{0x3f, 0x10}, seq(one, one)[1:]...)},
		{"BIT STRING r", seq(tlv(0x03, []byte{1}), one)},
		{"constructed INTEGER r", seq(tlv(0x22, one), one)},
		{"ENUMERATED s", seq(one, tlv(0x0a, []byte{1}))},
		{"context tag r", seq(tlv(0x80, []byte{1}), one)},
		{"huge r, 1000 bytes", seq(integer(magnitude(1000, 0x7f)...), one)},
		{"huge r, 70000 bytes (3 length bytes)", seq(integer(magnitude(70000, 0x01)...), one)},
		// Lengths of 2^24 and more need 4 length bytes, which the fast path
		// leaves to encoding/asn1: still canonical.
		{"huge r, 2^24 bytes (4 length bytes)", seq(integer(magnitude(1<<24, 0x01)...), one)},
	}
	// INTEGER contents of 127, 128 and 129 bytes, and SEQUENCE contents of
	// 127, 128 and 129 bytes (r's element plus s's 3 bytes), each minimal
	// and with a length one byte too long.
	for _, n := range []int{127, 128, 129, 122, 123, 124} {
		r := magnitude(n, 0x01)
		cases = append(cases,
			derCase{"r content " + strconv.Itoa(n), seq(integer(r...), one)},
			derCase{"r content " + strconv.Itoa(n) + ", length one byte too long", seq(tlvWithLength(0x02, longer(n), r), one)},
			derCase{"sequence with r content " + strconv.Itoa(n) + ", length one byte too long", tlvWithLength(0x30, longer(1+len(derLength(n))+n+3), integer(r...), one)},
		)
	}
	// Every prefix of the P-256-shaped signature.
	for i := range p256 {
		cases = append(cases, derCase{"truncated to " + strconv.Itoa(i), p256[:i]})
	}
	return cases
}

// longer is n's DER length with one more length byte than needed.
func longer(n int) []byte {
	l := derLength(n)
	if len(l) == 1 {
		return []byte{0x81, byte(n)}
	}
	return append([]byte{l[0] + 1, 0}, l[1:]...)
}

// vectorSignatures are the DER signatures of the checked-in SchemaPin
// vectors, written by the Go, Python and JavaScript SDKs.
func vectorSignatures(tb testing.TB) []derCase {
	paths, err := filepath.Glob(fixture(tb, "vectors", "*", SignatureFilename))
	if err != nil || len(paths) == 0 {
		tb.Fatalf("no vector signatures: %v", err)
	}
	var cases []derCase
	for _, p := range paths {
		doc, err := LoadSignature(filepath.Dir(p))
		if err != nil {
			tb.Fatal(err)
		}
		der, err := decodeSignatureValue(doc.Signature)
		if err != nil {
			tb.Fatal(err)
		}
		cases = append(cases, derCase{filepath.Base(filepath.Dir(p)), der})
	}
	return cases
}

func TestParseDERSignatureMatchesReference(t *testing.T) {
	for _, c := range append(derEdgeCases(), vectorSignatures(t)...) {
		t.Run(c.name, func(t *testing.T) { checkAgainstReference(t, c.der) })
	}
}

// TestParseDERSignatureRealSignatures: what crypto/ecdsa writes, on all
// three curves, is canonical and takes the fast path (checkAgainstReference
// requires the fast path for canonical input).
func TestParseDERSignatureRealSignatures(t *testing.T) {
	for _, c := range []elliptic.Curve{elliptic.P256(), elliptic.P384(), elliptic.P521()} {
		key, err := ecdsa.GenerateKey(c, cryptorand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		for range 50 {
			der, err := ecdsa.SignASN1(cryptorand.Reader, key, make([]byte, 32))
			if err != nil {
				t.Fatal(err)
			}
			if _, _, canonical, err := parseDERSignature(der); err != nil || !canonical {
				t.Fatalf("%s %x: canonical=%v, %v", c.Params().Name, der, canonical, err)
			}
			checkAgainstReference(t, der)
		}
	}
}

// TestParseDERSignatureRandom compares on structured random inputs: mostly
// near-canonical SEQUENCEs whose integers, lengths, tags and tails are
// perturbed one way or another, so that both paths are exercised.
func TestParseDERSignatureRandom(t *testing.T) {
	seed := rand.Uint64()
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 0))
	n := 50000
	if testing.Short() {
		n = 5000
	}
	for range n {
		checkAgainstReference(t, randomDER(rng))
	}
}

func randomDER(rng *rand.Rand) []byte {
	if rng.IntN(20) == 0 { // plain noise
		b := make([]byte, rng.IntN(80))
		for i := range b {
			b[i] = byte(rng.Uint32())
		}
		return b
	}
	var elems [][]byte
	count := 2
	if rng.IntN(10) == 0 {
		count = rng.IntN(4)
	}
	for range count {
		elems = append(elems, randomElement(rng, 0x02, randomInteger(rng)))
	}
	der := randomElement(rng, 0x30, bytes.Join(elems, nil))
	switch rng.IntN(8) {
	case 0, 1:
		der = append(der, make([]byte, 1+rng.IntN(3))...)
	case 2:
		der = der[:rng.IntN(len(der))]
	case 3:
		der[rng.IntN(len(der))] ^= byte(1 << rng.IntN(8))
	}
	return der
}

// randomInteger is INTEGER content: usually a minimal positive value of a
// signature's size (with the 0x00 the sign bit needs, or with the top bit
// clear), sometimes zero, negative, empty or with a redundant leading byte.
func randomInteger(rng *rand.Rand) []byte {
	lengths := []int{1, 2, 31, 32, 47, 48, 65, 66, 126, 127, 128}
	b := make([]byte, lengths[rng.IntN(len(lengths))])
	if rng.IntN(8) == 0 {
		b = b[:rng.IntN(len(b)+1)]
	}
	for i := range b {
		b[i] = byte(rng.Uint32())
	}
	if len(b) == 0 {
		return b
	}
	switch rng.IntN(16) {
	case 0:
		b[0] = 0
	case 1:
		b[0] = 0xff
	case 2:
		return append([]byte{0}, b...) // redundant unless the top bit is set
	case 3:
		return b // negative half of the time
	}
	if b[0]&0x80 != 0 && rng.IntN(2) == 0 {
		return append([]byte{0}, b...)
	}
	b[0] = b[0]&0x7f | 0x01
	return b
}

// randomElement is tag and content with a length that is usually minimal,
// sometimes long-form with extra bytes, indefinite, or off by one; the tag
// is sometimes changed.
func randomElement(rng *rand.Rand, tag byte, content []byte) []byte {
	if rng.IntN(30) == 0 {
		tag = byte(rng.Uint32())
	}
	length := derLength(len(content))
	switch rng.IntN(24) {
	case 0:
		length = longer(len(content))
	case 1:
		length = []byte{0x80}
	case 2:
		length = derLength(len(content) + rng.IntN(3) - 1)
	}
	return tlvWithLength(tag, length, content)
}

// FuzzParseDERSignature: parseDERSignature and the reference agree on
// every input, and the fast path takes exactly the canonical ones.
func FuzzParseDERSignature(f *testing.F) {
	for _, c := range append(derEdgeCases(), vectorSignatures(f)...) {
		if len(c.der) <= 4096 {
			f.Add(c.der)
		}
	}
	f.Fuzz(func(t *testing.T, der []byte) { checkAgainstReference(t, der) })
}
