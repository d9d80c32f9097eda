package logproof

import (
	"bytes"
	"encoding/binary"
	"errors"
	"strings"
	"testing"
)

// encode builds a record encoding by hand from the documented layout:
// field(tag) uint64be(seq) field(prev_hash) field(time) field(caller)
// field(operation) field(key) field(org) field(digest) field(outcome)
// field(detail) [field(signature)].
func encode(tag string, seq uint64, fields ...string) []byte {
	var b bytes.Buffer
	f := func(s string) {
		binary.Write(&b, binary.BigEndian, uint32(len(s)))
		b.WriteString(s)
	}
	f(tag)
	binary.Write(&b, binary.BigEndian, seq)
	for _, s := range fields {
		f(s)
	}
	return b.Bytes()
}

func TestParseLeaf(t *testing.T) {
	prev := strings.Repeat("\x00", 32)
	digest := strings.Repeat("ab", 32)
	sig := strings.Repeat("s", 64)
	v2 := encode(tagV2, 7, prev, "2026-01-02T03:04:05Z", "uid:1000", "sign", "release", "", digest, "ok", "", sig)
	r, err := ParseLeaf(v2)
	if err != nil {
		t.Fatal(err)
	}
	if r.Version != 2 || r.Seq != 7 || r.Operation != "sign" || r.Key != "release" || r.Digest != digest || string(r.Signature) != sig || r.Caller != "uid:1000" {
		t.Fatalf("ParseLeaf = %+v", r)
	}
	d := bytes.Repeat([]byte{0xab}, 32)
	if err := r.MatchSignature(6, d, []byte(sig)); err != nil {
		t.Fatalf("MatchSignature: %v", err)
	}
	for name, args := range map[string]struct {
		index     uint64
		digest    []byte
		signature string
	}{
		"another index":     {5, d, sig},
		"another digest":    {6, bytes.Repeat([]byte{0xac}, 32), sig},
		"another signature": {6, d, strings.Repeat("t", 64)},
	} {
		if err := r.MatchSignature(args.index, args.digest, []byte(args.signature)); err == nil {
			t.Errorf("%s: MatchSignature accepted it", name)
		}
	}
	v1 := encode(tagV1, 7, prev, "2026-01-02T03:04:05Z", "uid:1000", "sign", "release", "", digest, "ok", "")
	if r, err := ParseLeaf(v1); err != nil || r.Version != 1 {
		t.Fatalf("ParseLeaf(v1) = %+v, %v", r, err)
	} else if r.MatchSignature(6, d, []byte(sig)) == nil {
		t.Fatal("a version 1 record matched a signature")
	}
	verify := encode(tagV2, 7, prev, "t", "uid:1000", "verify", "", "acme", digest, "ok", "", sig)
	if r, err := ParseLeaf(verify); err != nil || r.MatchSignature(6, d, []byte(sig)) == nil {
		t.Fatalf("a verify record matched a signature (%v)", err)
	}
	for name, leaf := range map[string][]byte{
		"empty":             nil,
		"unknown tag":       encode("signerd-audit-v9", 7, prev, "t", "c", "sign", "k", "", digest, "ok", "", sig),
		"cut off":           v2[:len(v2)-1],
		"trailing byte":     append(bytes.Clone(v2), 0),
		"v1 with signature": append(bytes.Clone(v1), v2[len(v2)-68:]...),
		"v2 without":        encode(tagV2, 7, prev, "t", "c", "sign", "k", "", digest, "ok", ""),
		"huge length":       append(encode(tagV2, 7), 0xff, 0xff, 0xff, 0xff),
	} {
		if _, err := ParseLeaf(leaf); !errors.Is(err, ErrLeaf) {
			t.Errorf("%s: ParseLeaf = %v, want ErrLeaf", name, err)
		}
	}
}
