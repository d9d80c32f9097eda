package pkgsig

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"unicode/utf16"
	"unicode/utf8"
)

// The detached document is read by a small hand-written reader rather than
// encoding/json because encoding/json is looser than Cloacina's reader
// (serde_json::from_str into DetachedSignature) in ways an attacker can use
// to make two verifiers see two different documents: it keeps the last of
// duplicated fields, matches field names case-insensitively, replaces
// invalid UTF-8 and lone surrogates with U+FFFD, and lets a missing or null
// field through. This reader accepts a subset of what serde_json accepts:
//
//   - the whole input is valid UTF-8 (Cloacina reads it with read_to_string);
//   - JSON whitespace (space, tab, LF, CR) around one object, nothing else
//     after it (serde_json's "trailing characters");
//   - the six fields each exactly once under their exact names; a second
//     occurrence, after unescaping, is serde's "duplicate field";
//   - "version" a JSON integer, the five others JSON strings (null is not a
//     string); string escapes are decoded as serde does, and a lone UTF-16
//     surrogate escape is refused anywhere;
//   - unknown fields are skipped, their values checked to be JSON, nested at
//     most maxNesting deep.
//
// Stricter than serde, and documented as such in README.md: a field name
// that differs from a known one only in case ("SIGNATURE") is refused
// rather than ignored, a JSON array (serde's sequence form of a struct) is
// refused, a lone surrogate escape in an unknown field's value is refused
// (serde_json skips those without checking them), numbers outside float64's range are refused even in unknown
// fields, and nesting is limited to 64 levels where serde allows 127.

// maxNesting bounds the nesting of arrays and objects, the document object
// included; serde_json's limit is 128 with the same count.
const maxNesting = 64

// Document field names, in wire order.
const (
	fieldVersion        = "version"
	fieldAlgorithm      = "algorithm"
	fieldPackageHash    = "package_hash"
	fieldKeyFingerprint = "key_fingerprint"
	fieldSignature      = "signature"
	fieldSignedAt       = "signed_at"
)

var documentFields = []string{fieldVersion, fieldAlgorithm, fieldPackageHash, fieldKeyFingerprint, fieldSignature, fieldSignedAt}

// rawDocument is the six fields as read, before their contents are checked.
// Version is the JSON number literal.
type rawDocument struct {
	fields map[string]string
}

// readDocument reads data as Cloacina's reader would, returning each field's
// decoded value. Every error is the reason the document is malformed.
func readDocument(data []byte) (rawDocument, error) {
	if !utf8.Valid(data) {
		return rawDocument{}, errors.New("signature document is not valid UTF-8")
	}
	r := &reader{data: data}
	r.skipSpace()
	if r.eof() {
		return rawDocument{}, errors.New("signature document is empty")
	}
	if r.data[r.pos] != '{' {
		return rawDocument{}, r.errorf("signature document is not a JSON object")
	}
	doc := rawDocument{fields: make(map[string]string, len(documentFields))}
	if err := r.readObject(doc.fields); err != nil {
		return rawDocument{}, err
	}
	r.skipSpace()
	if !r.eof() {
		return rawDocument{}, r.errorf("signature document has data after the JSON object")
	}
	for _, name := range documentFields {
		if _, ok := doc.fields[name]; !ok {
			return rawDocument{}, fmt.Errorf("signature document has no %q", name)
		}
	}
	return doc, nil
}

type reader struct {
	data []byte
	pos  int
}

func (r *reader) eof() bool { return r.pos >= len(r.data) }

func (r *reader) errorf(format string, args ...any) error {
	return fmt.Errorf("%s at byte %d", fmt.Sprintf(format, args...), r.pos)
}

// skipSpace skips JSON's four whitespace bytes, exactly serde_json's set.
func (r *reader) skipSpace() {
	for !r.eof() {
		switch r.data[r.pos] {
		case ' ', '\t', '\n', '\r':
			r.pos++
		default:
			return
		}
	}
}

// expect consumes c after optional whitespace.
func (r *reader) expect(c byte, what string) error {
	r.skipSpace()
	if r.eof() {
		return r.errorf("signature document ends where %s was expected", what)
	}
	if r.data[r.pos] != c {
		return r.errorf("signature document has %q where %s was expected", r.data[r.pos], what)
	}
	r.pos++
	return nil
}

// readObject reads the document object (r.pos at '{') into fields.
func (r *reader) readObject(fields map[string]string) error {
	r.pos++ // '{'
	r.skipSpace()
	if !r.eof() && r.data[r.pos] == '}' {
		r.pos++
		return nil
	}
	for {
		r.skipSpace()
		if r.eof() || r.data[r.pos] != '"' {
			return r.errorf("signature document: expected a field name")
		}
		name, err := r.readString()
		if err != nil {
			return err
		}
		if err := r.expect(':', "':'"); err != nil {
			return err
		}
		r.skipSpace()
		known := isDocumentField(name)
		switch {
		case known:
			if _, dup := fields[name]; dup {
				return r.errorf("signature document has field %q twice", name)
			}
			v, err := r.readField(name)
			if err != nil {
				return err
			}
			fields[name] = v
		case foldsToDocumentField(name):
			return r.errorf("signature document has field %q: field names are case-sensitive", name)
		default:
			if err := r.skipValue(2); err != nil {
				return err
			}
		}
		r.skipSpace()
		if r.eof() {
			return r.errorf("signature document ends inside the object")
		}
		switch r.data[r.pos] {
		case ',':
			r.pos++
		case '}':
			r.pos++
			return nil
		default:
			return r.errorf("signature document has %q where ',' or '}' was expected", r.data[r.pos])
		}
	}
}

func isDocumentField(name string) bool {
	for _, f := range documentFields {
		if name == f {
			return true
		}
	}
	return false
}

func foldsToDocumentField(name string) bool {
	for _, f := range documentFields {
		if strings.EqualFold(name, f) {
			return true
		}
	}
	return false
}

// readField reads a known field's value: version a number literal, the
// others strings. null is a wrong type, as serde reports it.
func (r *reader) readField(name string) (string, error) {
	if r.eof() {
		return "", r.errorf("signature document ends where the value of %q was expected", name)
	}
	c := r.data[r.pos]
	if name == fieldVersion {
		if c != '-' && (c < '0' || c > '9') {
			return "", r.errorf("%q must be an unsigned integer", name)
		}
		return r.readNumber()
	}
	if c != '"' {
		return "", r.errorf("%q must be a string", name)
	}
	return r.readString()
}

// readString reads a JSON string at r.pos (at '"') and returns it decoded.
// The input is already known to be UTF-8; raw control characters, unknown
// escapes and lone surrogate escapes are errors, as in serde_json.
func (r *reader) readString() (string, error) {
	r.pos++ // opening quote
	// Fast path: most strings have no escape and end at the next quote.
	for i := r.pos; i < len(r.data); i++ {
		if c := r.data[i]; c == '"' {
			v := string(r.data[r.pos:i])
			r.pos = i + 1
			return v, nil
		} else if c == '\\' || c < 0x20 {
			break
		}
	}
	var b strings.Builder
	for {
		if r.eof() {
			return "", r.errorf("signature document ends inside a string")
		}
		c := r.data[r.pos]
		switch {
		case c == '"':
			r.pos++
			return b.String(), nil
		case c < 0x20:
			return "", r.errorf("signature document has a control character inside a string")
		case c != '\\':
			b.WriteByte(c)
			r.pos++
			continue
		}
		r.pos++ // backslash
		if r.eof() {
			return "", r.errorf("signature document ends inside an escape")
		}
		e := r.data[r.pos]
		r.pos++
		switch e {
		case '"', '\\', '/':
			b.WriteByte(e)
		case 'b':
			b.WriteByte('\b')
		case 'f':
			b.WriteByte('\f')
		case 'n':
			b.WriteByte('\n')
		case 'r':
			b.WriteByte('\r')
		case 't':
			b.WriteByte('\t')
		case 'u':
			cp, err := r.readHex4()
			if err != nil {
				return "", err
			}
			switch {
			case utf16.IsSurrogate(cp) && cp < 0xDC00:
				if r.pos+1 >= len(r.data) || r.data[r.pos] != '\\' || r.data[r.pos+1] != 'u' {
					return "", r.errorf("signature document has a lone surrogate escape")
				}
				r.pos += 2
				lo, err := r.readHex4()
				if err != nil {
					return "", err
				}
				if lo < 0xDC00 || lo > 0xDFFF {
					return "", r.errorf("signature document has a lone surrogate escape")
				}
				b.WriteRune(utf16.DecodeRune(cp, lo))
			case utf16.IsSurrogate(cp):
				return "", r.errorf("signature document has a lone surrogate escape")
			default:
				b.WriteRune(cp)
			}
		default:
			return "", r.errorf("signature document has an invalid escape \\%c", e)
		}
	}
}

func (r *reader) readHex4() (rune, error) {
	if r.pos+4 > len(r.data) {
		return 0, r.errorf("signature document ends inside a \\u escape")
	}
	var v rune
	for _, c := range r.data[r.pos : r.pos+4] {
		var d byte
		switch {
		case c >= '0' && c <= '9':
			d = c - '0'
		case c >= 'a' && c <= 'f':
			d = c - 'a' + 10
		case c >= 'A' && c <= 'F':
			d = c - 'A' + 10
		default:
			return 0, r.errorf("signature document has an invalid \\u escape")
		}
		v = v<<4 | rune(d)
	}
	r.pos += 4
	return v, nil
}

// readNumber reads a JSON number literal (RFC 8259 grammar) and returns
// it verbatim. A value float64 cannot hold is refused, as serde_json
// refuses it when it reads the number.
func (r *reader) readNumber() (string, error) {
	start := r.pos
	if r.data[r.pos] == '-' {
		r.pos++
	}
	switch {
	case r.eof():
		return "", r.errorf("signature document has an invalid number")
	case r.data[r.pos] == '0':
		r.pos++
	case isDigit(r.data[r.pos]):
		r.digits()
	default:
		return "", r.errorf("signature document has an invalid number")
	}
	if !r.eof() && r.data[r.pos] == '.' {
		r.pos++
		if r.eof() || !isDigit(r.data[r.pos]) {
			return "", r.errorf("signature document has an invalid number")
		}
		r.digits()
	}
	if !r.eof() && (r.data[r.pos] == 'e' || r.data[r.pos] == 'E') {
		r.pos++
		if !r.eof() && (r.data[r.pos] == '+' || r.data[r.pos] == '-') {
			r.pos++
		}
		if r.eof() || !isDigit(r.data[r.pos]) {
			return "", r.errorf("signature document has an invalid number")
		}
		r.digits()
	}
	lit := string(r.data[start:r.pos])
	if _, err := strconv.ParseFloat(lit, 64); err != nil {
		return "", r.errorf("signature document has a number out of range")
	}
	return lit, nil
}

func (r *reader) digits() {
	for !r.eof() && isDigit(r.data[r.pos]) {
		r.pos++
	}
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

// skipValue checks and skips the value of an unknown field. depth is the
// nesting level a container opened here would have.
func (r *reader) skipValue(depth int) error {
	if r.eof() {
		return r.errorf("signature document ends where a value was expected")
	}
	switch c := r.data[r.pos]; {
	case c == '"':
		_, err := r.readString()
		return err
	case c == '-' || isDigit(c):
		_, err := r.readNumber()
		return err
	case c == 't':
		return r.literal("true")
	case c == 'f':
		return r.literal("false")
	case c == 'n':
		return r.literal("null")
	case c == '[' || c == '{':
		if depth > maxNesting {
			return r.errorf("signature document nests deeper than %d levels", maxNesting)
		}
		return r.skipContainer(c, depth)
	default:
		return r.errorf("signature document has %q where a value was expected", c)
	}
}

func (r *reader) literal(word string) error {
	if !strings.HasPrefix(string(r.data[r.pos:min(len(r.data), r.pos+len(word))]), word) {
		return r.errorf("signature document has an invalid literal")
	}
	r.pos += len(word)
	return nil
}

// skipContainer skips an array or object of an unknown field, whose
// duplicate keys are allowed (serde ignores the whole value).
func (r *reader) skipContainer(open byte, depth int) error {
	closer := byte(']')
	if open == '{' {
		closer = '}'
	}
	r.pos++
	r.skipSpace()
	if !r.eof() && r.data[r.pos] == closer {
		r.pos++
		return nil
	}
	for {
		r.skipSpace()
		if open == '{' {
			if r.eof() || r.data[r.pos] != '"' {
				return r.errorf("signature document: expected a member name")
			}
			if _, err := r.readString(); err != nil {
				return err
			}
			if err := r.expect(':', "':'"); err != nil {
				return err
			}
			r.skipSpace()
		}
		if err := r.skipValue(depth + 1); err != nil {
			return err
		}
		r.skipSpace()
		if r.eof() {
			return r.errorf("signature document ends inside a value")
		}
		switch r.data[r.pos] {
		case ',':
			r.pos++
		case closer:
			r.pos++
			return nil
		default:
			return r.errorf("signature document has %q where ',' or %q was expected", r.data[r.pos], closer)
		}
	}
}
