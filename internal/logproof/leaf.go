package logproof

import (
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
)

// ErrLeaf is the kind of a leaf that is not an audit record's encoding.
var ErrLeaf = errors.New("not an audit record")

// Record is an audit record read back from its canonical encoding
// (store.EncodeAuditRecord, documented there): the fields a verifier needs
// to know whose signature a leaf records. Time is the encoding's text.
type Record struct {
	Version   int // 1 or 2
	Seq       uint64
	PrevHash  []byte
	Time      string
	Caller    string
	Operation string
	Key       string
	Org       string
	Digest    string // lowercase hex
	Outcome   string
	Detail    string
	// Signature is the raw signature handed out (version 2 only).
	Signature []byte
}

// Encoding tags, the first field of a record's encoding.
const (
	tagV1 = "signerd-audit-v1"
	tagV2 = "signerd-audit-v2"
)

// ParseLeaf reads a leaf as an audit record. It is written from the
// encoding's documentation, not from its encoder, and refuses anything
// but exactly one well-formed record: a short field, trailing bytes, an
// unknown tag.
func ParseLeaf(leaf []byte) (Record, error) {
	rest := leaf
	field := func(name string) ([]byte, error) {
		if len(rest) < 4 {
			return nil, fmt.Errorf("%w: the %s field is cut off", ErrLeaf, name)
		}
		n := binary.BigEndian.Uint32(rest)
		if uint64(n) > uint64(len(rest)-4) {
			return nil, fmt.Errorf("%w: the %s field claims %d bytes, %d remain", ErrLeaf, name, n, len(rest)-4)
		}
		f := rest[4 : 4+n]
		rest = rest[4+n:]
		return f, nil
	}
	tag, err := field("tag")
	if err != nil {
		return Record{}, err
	}
	var r Record
	switch string(tag) {
	case tagV1:
		r.Version = 1
	case tagV2:
		r.Version = 2
	default:
		return Record{}, fmt.Errorf("%w: unknown encoding tag %q", ErrLeaf, tag)
	}
	if len(rest) < 8 {
		return Record{}, fmt.Errorf("%w: the seq is cut off", ErrLeaf)
	}
	r.Seq = binary.BigEndian.Uint64(rest)
	rest = rest[8:]
	strs := []struct {
		name string
		dst  *string
	}{
		{"time", &r.Time}, {"caller", &r.Caller}, {"operation", &r.Operation}, {"key", &r.Key},
		{"org", &r.Org}, {"digest", &r.Digest}, {"outcome", &r.Outcome}, {"detail", &r.Detail},
	}
	if r.PrevHash, err = field("prev_hash"); err != nil {
		return Record{}, err
	}
	for _, s := range strs {
		f, err := field(s.name)
		if err != nil {
			return Record{}, err
		}
		*s.dst = string(f)
	}
	if r.Version == 2 {
		if r.Signature, err = field("signature"); err != nil {
			return Record{}, err
		}
		if len(r.Signature) == 0 {
			return Record{}, fmt.Errorf("%w: a version 2 record with an empty signature", ErrLeaf)
		}
	}
	if len(rest) != 0 {
		return Record{}, fmt.Errorf("%w: %d bytes after the last field", ErrLeaf, len(rest))
	}
	return r, nil
}

// SignatureOperations are the audit operations whose records carry a
// signature handed out.
var SignatureOperations = map[string]bool{"sign": true, "skill.sign": true}

// MatchSignature checks that r is the record of signature sig over digest
// at leaf index: the record of a successful signing, at that position,
// naming this digest and these signature bytes.
func (r Record) MatchSignature(index uint64, digest, sig []byte) error {
	switch {
	case r.Seq != index+1:
		return fmt.Errorf("the leaf is record %d, but leaf index %d holds record %d", r.Seq, index, index+1)
	case !SignatureOperations[r.Operation]:
		return fmt.Errorf("the leaf is a %q record, not the record of a signature", r.Operation)
	case r.Outcome != "ok":
		return fmt.Errorf("the leaf records a %s with outcome %q", r.Operation, r.Outcome)
	case r.Digest != hex.EncodeToString(digest):
		return fmt.Errorf("the leaf records a signature over %s, not over this artifact's %x", r.Digest, digest)
	case r.Version != 2:
		return fmt.Errorf("the leaf is a version 1 record, which names no signature")
	case string(r.Signature) != string(sig):
		return fmt.Errorf("the leaf records another signature over this digest than the one given")
	}
	return nil
}
