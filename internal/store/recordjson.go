package store

import (
	"encoding/base64"
	"encoding/json"
	"strconv"
	"time"
	"unicode/utf8"
)

// Hand-written JSON encoders for the two records the signing hot path
// stores per signature (boltstore's PutSignature and appendAudit). A CPU
// profile of the daemon put about 13 µs per signature in encoding/json
// there: its reflection, and the growth of request goroutines' stacks its
// deep call chains cause. BenchmarkRecordJSON compares the two.
//
// Each encoder appends exactly the bytes json.Marshal produces for the
// same value: the stored records are read back with json.Unmarshal,
// SignatureLeaf's prefilter searches a record's bytes for the signature's
// base64 as json.Marshal writes it, and a file written before these
// encoders must be indistinguishable from one written after. The
// differential tests and the fuzz target in recordjson_test.go hold them
// to that, and fail when a struct gains a field the encoder does not write.

// AppendSignatureRecordJSON appends json.Marshal(rec) to b. Its error is
// json.Marshal's: only a SignedAt that RFC 3339 cannot express fails.
func AppendSignatureRecordJSON(b []byte, rec SignatureRecord) ([]byte, error) {
	n0 := len(b)
	b = append(b, `{"digest":`...)
	b = appendJSONBytes(b, rec.Digest)
	b = append(b, `,"format":`...)
	b = appendJSONString(b, string(rec.Format))
	b = append(b, `,"key_name":`...)
	b = appendJSONString(b, rec.KeyName)
	b = append(b, `,"key_version":`...)
	b = strconv.AppendUint(b, uint64(rec.KeyVersion), 10)
	b = append(b, `,"fingerprint":`...)
	b = appendJSONString(b, rec.Fingerprint)
	b = append(b, `,"algorithm":`...)
	b = appendJSONString(b, rec.Algorithm)
	b = append(b, `,"signature":`...)
	b = appendJSONBytes(b, rec.Signature)
	b = append(b, `,"signed_at":`...)
	b, ok := appendJSONTime(b, rec.SignedAt)
	if !ok {
		return marshalFallback(b[:n0], rec)
	}
	if rec.ArtifactName != "" {
		b = append(b, `,"artifact_name":`...)
		b = appendJSONString(b, rec.ArtifactName)
	}
	if rec.Caller != "" {
		b = append(b, `,"caller":`...)
		b = appendJSONString(b, rec.Caller)
	}
	b = append(b, `,"document":`...)
	b = appendJSONBytes(b, rec.Document)
	return append(b, '}'), nil
}

// recordJSONFixed bounds what either record's encoding adds to the
// lengths of its strings and base64: member names, quotes, a 20-digit
// number and a 35-byte time (TestRecordJSONSize).
const recordJSONFixed = 256

// SignatureRecordJSONSize is a capacity for AppendSignatureRecordJSON's
// buffer that fits rec unless its strings need escaping, so that the
// encoding allocates once.
func SignatureRecordJSONSize(rec SignatureRecord) int {
	return recordJSONFixed + base64.StdEncoding.EncodedLen(len(rec.Digest)) +
		base64.StdEncoding.EncodedLen(len(rec.Signature)) +
		base64.StdEncoding.EncodedLen(len(rec.Document)) +
		len(rec.Format) + len(rec.KeyName) + len(rec.Fingerprint) +
		len(rec.Algorithm) + len(rec.ArtifactName) + len(rec.Caller)
}

// AppendAuditRecordJSON appends json.Marshal(rec) to b: the embedded
// AuditEvent's fields sit between prev_hash and hash, in declaration order,
// as encoding/json promotes them. Its error is json.Marshal's: only a Time
// that RFC 3339 cannot express fails.
func AppendAuditRecordJSON(b []byte, rec AuditRecord) ([]byte, error) {
	n0 := len(b)
	b = append(b, `{"seq":`...)
	b = strconv.AppendUint(b, rec.Seq, 10)
	b = append(b, `,"prev_hash":`...)
	b = appendJSONBytes(b, rec.PrevHash)
	b = append(b, `,"time":`...)
	b, ok := appendJSONTime(b, rec.Time)
	if !ok {
		return marshalFallback(b[:n0], rec)
	}
	b = append(b, `,"caller":`...)
	b = appendJSONString(b, rec.Caller)
	b = append(b, `,"operation":`...)
	b = appendJSONString(b, rec.Operation)
	if rec.Key != "" {
		b = append(b, `,"key":`...)
		b = appendJSONString(b, rec.Key)
	}
	if rec.Org != "" {
		b = append(b, `,"org":`...)
		b = appendJSONString(b, rec.Org)
	}
	if rec.Digest != "" {
		b = append(b, `,"digest":`...)
		b = appendJSONString(b, rec.Digest)
	}
	b = append(b, `,"outcome":`...)
	b = appendJSONString(b, rec.Outcome)
	if rec.Detail != "" {
		b = append(b, `,"detail":`...)
		b = appendJSONString(b, rec.Detail)
	}
	if len(rec.Signature) != 0 {
		b = append(b, `,"signature":`...)
		b = appendJSONBytes(b, rec.Signature)
	}
	b = append(b, `,"hash":`...)
	b = appendJSONBytes(b, rec.Hash)
	return append(b, '}'), nil
}

// AuditRecordJSONSize is a capacity for AppendAuditRecordJSON's buffer
// that fits rec unless its strings need escaping.
func AuditRecordJSONSize(rec AuditRecord) int {
	return recordJSONFixed + base64.StdEncoding.EncodedLen(len(rec.PrevHash)) +
		base64.StdEncoding.EncodedLen(len(rec.Signature)) +
		base64.StdEncoding.EncodedLen(len(rec.Hash)) +
		len(rec.Caller) + len(rec.Operation) + len(rec.Key) + len(rec.Org) +
		len(rec.Digest) + len(rec.Outcome) + len(rec.Detail)
}

// marshalFallback hands a value the fast path cannot encode (a time
// outside RFC 3339) to json.Marshal, so that its error, or in a future Go
// its encoding, is json.Marshal's own.
func marshalFallback(b []byte, v any) ([]byte, error) {
	raw, err := json.Marshal(v)
	if err != nil {
		return b, err
	}
	return append(b, raw...), nil
}

// appendJSONBytes is encoding/json's encodeByteSlice: null for a nil
// slice, else standard base64 with padding, quoted.
func appendJSONBytes(b, v []byte) []byte {
	if v == nil {
		return append(b, "null"...)
	}
	b = append(b, '"')
	b = base64.StdEncoding.AppendEncode(b, v)
	return append(b, '"')
}

// appendJSONTime appends t as time.Time.MarshalJSON does (quoted
// RFC3339Nano, which AppendFormat writes with the same code) and reports
// false, with b unchanged, where MarshalJSON fails: the checks are
// time.Time.appendStrictRFC3339's, on the same bytes.
func appendJSONTime(b []byte, t time.Time) ([]byte, bool) {
	n0 := len(b)
	b = append(b, '"')
	b = t.AppendFormat(b, time.RFC3339Nano)
	s := b[n0+1:]
	num2 := func(b []byte) byte { return 10*(b[0]-'0') + (b[1] - '0') }
	switch {
	case s[len("9999")] != '-': // year must be exactly 4 digits wide
		return b[:n0], false
	case s[len(s)-1] != 'Z':
		c := s[len(s)-len("Z07:00")]
		if ('0' <= c && c <= '9') || num2(s[len(s)-len("07:00"):]) >= 24 {
			return b[:n0], false // zone hour outside [0,23]
		}
	}
	return append(b, '"'), true
}

// jsonSafe holds the ASCII bytes encoding/json writes unescaped by default
// (its htmlSafeSet): printable ASCII and DEL, except '"', '\\' and the
// HTML-sensitive '<', '>' and '&'.
var jsonSafe = func() (set [utf8.RuneSelf]bool) {
	for c := ' '; c < utf8.RuneSelf; c++ {
		set[c] = true
	}
	for _, c := range `"\<>&` {
		set[c] = false
	}
	return set
}()

// appendJSONString is encoding/json's appendString with escapeHTML set, as
// json.Marshal calls it: the same escapes, \ufffd for each invalid UTF-8
// byte, and U+2028 and U+2029 escaped.
func appendJSONString(b []byte, s string) []byte {
	const hex = "0123456789abcdef"
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		if c := s[i]; c < utf8.RuneSelf {
			if jsonSafe[c] {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '\\', '"':
				b = append(b, '\\', c)
			case '\b':
				b = append(b, '\\', 'b')
			case '\f':
				b = append(b, '\\', 'f')
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				// Other control bytes, and <, > and &.
				b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xF])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hex[r&0xF])
			i += size
			start = i
			continue
		}
		i += size
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}
