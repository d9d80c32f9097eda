package skill

import "math/big"

// parseCanonicalDER is parseDERSignature's fast path. It accepts only the
// exact bytes asn1.Marshal writes for SEQUENCE{INTEGER r, INTEGER s} with
// r, s > 0, and returns them without encoding/asn1's reflection and the
// re-marshal that proves canonicality (most of parseDERSignature's cost,
// paid twice per SignSkill). Because everything it accepts is exactly what
// the asn1 path would call canonical, and everything else goes to the asn1
// path, parseDERSignature's result is unchanged for every input
// (TestParseDERSignatureMatchesReference, FuzzParseDERSignature).
func parseCanonicalDER(der []byte) (r, s *big.Int, ok bool) {
	seq, rest, ok := readDERElement(der, 0x30) // SEQUENCE, constructed
	if !ok || len(rest) != 0 {
		return nil, nil, false
	}
	rb, seq, ok := readDERElement(seq, 0x02) // INTEGER
	if !ok || !isMinimalPositive(rb) {
		return nil, nil, false
	}
	sb, seq, ok := readDERElement(seq, 0x02)
	if !ok || len(seq) != 0 || !isMinimalPositive(sb) {
		return nil, nil, false
	}
	return new(big.Int).SetBytes(rb), new(big.Int).SetBytes(sb), true
}

// readDERElement reads one element with the given one-byte tag and a
// minimal definite length, as asn1.Marshal writes it: short form below 128,
// else 0x80|n followed by n big-endian bytes without a leading zero. The
// indefinite form (0x80) and lengths of more than 3 bytes (16 MiB, far
// beyond any signature) are refused, which only sends them to the asn1
// path.
func readDERElement(in []byte, tag byte) (content, rest []byte, ok bool) {
	if len(in) < 2 || in[0] != tag {
		return nil, nil, false
	}
	n, hdr := int(in[1]), 2
	if n >= 0x80 {
		k := n & 0x7f
		if k == 0 || k > 3 || len(in) < 2+k || in[2] == 0 {
			return nil, nil, false
		}
		n = 0
		for _, b := range in[2 : 2+k] {
			n = n<<8 | int(b)
		}
		if n < 0x80 { // the short form was required
			return nil, nil, false
		}
		hdr += k
	}
	if len(in)-hdr < n {
		return nil, nil, false
	}
	return in[hdr : hdr+n], in[hdr+n:], true
}

// isMinimalPositive reports whether b is the two's-complement encoding
// asn1.Marshal writes for an integer > 0: not empty, sign bit clear, and a
// leading 0x00 only when the next byte has its top bit set (so neither zero,
// written 0x00, nor a redundant leading zero passes).
func isMinimalPositive(b []byte) bool {
	if len(b) == 0 || b[0]&0x80 != 0 {
		return false
	}
	if b[0] == 0 {
		return len(b) > 1 && b[1]&0x80 != 0
	}
	return true
}
