package pkgsig

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/signerd/signerd/internal/errdefs"
)

// strictGood is Cloacina's detached signature of "test package binary
// content" (the conformance fixture libworkflow.so.sig), as
// serde_json::to_string_pretty writes it.
const strictGood = `{
  "version": 1,
  "algorithm": "ed25519",
  "package_hash": "59ff55de6857b718c180deb034d529996084be9556ca645e4e1de2129aa7e556",
  "key_fingerprint": "3097e2dee2cb4a34b53840cdb705aed71067c36f68db0e0f559c3f3fa043315f",
  "signature": "7vVRfXevOMGoYqNxzmzUxqG96vTsdKo7f5nuVOAvvPVY2D1HtpQlFmHHzxbyuzBSvJ1/04zegWneorAZRg2hCg==",
  "signed_at": "2026-01-28T12:00:00+00:00"
}`

const strictGoodSig = "7vVRfXevOMGoYqNxzmzUxqG96vTsdKo7f5nuVOAvvPVY2D1HtpQlFmHHzxbyuzBSvJ1/04zegWneorAZRg2hCg=="

// otherSig is a different, well-formed 64-byte signature value.
const otherSig = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=="

func replace(old, new string) string { return strings.Replace(strictGood, old, new, 1) }

// strictCases are the documents Cloacina's reader (serde_json into
// DetachedSignature, base64 0.22 STANDARD) accepts or refuses, with the
// places where signerd is deliberately stricter marked.
var strictCases = []struct {
	name string
	doc  string
	ok   bool
}{
	{"as written", strictGood, true},
	{"trailing newline", strictGood + "\n", true},
	{"trailing whitespace", strictGood + " \t\r\n ", true},
	{"leading whitespace", "\n\t " + strictGood, true},
	{"CRLF lines", strings.ReplaceAll(strictGood, "\n", "\r\n"), true},
	{"one line", strings.NewReplacer("\n", "", "  ", "").Replace(strictGood), true},
	{"fields reordered", `{"signed_at":"x","signature":"` + strictGoodSig + `","key_fingerprint":"3097e2dee2cb4a34b53840cdb705aed71067c36f68db0e0f559c3f3fa043315f","package_hash":"59ff55de6857b718c180deb034d529996084be9556ca645e4e1de2129aa7e556","algorithm":"ed25519","version":1}`, true},
	{"unknown string field", replace(`"version": 1,`, `"version": 1, "comment": "hi",`), true},
	{"unknown fields of every type", replace(`"version": 1,`, `"a": null, "b": true, "c": false, "d": -1.5e+3, "e": [1, [2, {}], {"x": [], "x": 0}], "f": {"g": {"h": "\u00e9\ud83d\ude00"}},"version": 1,`), true},
	{"unknown field twice", replace(`"version": 1,`, `"x": 1, "x": 2, "version": 1,`), true},
	{"escaped field name", replace(`"signature"`, `"sign\u0061ture"`), true},
	{"escaped algorithm", replace(`"ed25519"`, `"ed\u00325519"`), true},
	{"escaped slash", replace("SvJ1/04", `SvJ1\/04`), true},
	{"empty signed_at", replace(`"2026-01-28T12:00:00+00:00"`, `""`), true},
	{"signed_at not a date", replace(`"2026-01-28T12:00:00+00:00"`, `"yesterday"`), true},
	{"signed_at with escapes", replace(`"2026-01-28T12:00:00+00:00"`, `"\u001b[32mOK\u0000"`), true},
	{"nesting at the limit", replace(`"version": 1,`, `"deep": `+strings.Repeat("[", maxNesting-1)+strings.Repeat("]", maxNesting-1)+`, "version": 1,`), true},

	{"empty", "", false},
	{"whitespace only", " \r\n", false},
	{"empty object", "{}", false},
	{"array (serde's sequence form; stricter)", `[1, "ed25519", "59ff55de6857b718c180deb034d529996084be9556ca645e4e1de2129aa7e556", "3097e2dee2cb4a34b53840cdb705aed71067c36f68db0e0f559c3f3fa043315f", "` + strictGoodSig + `", "x"]`, false},
	{"duplicated signature", replace(`"signed_at"`, `"signature": "`+otherSig+`", "signed_at"`), false},
	{"duplicated package_hash", replace(`"signed_at"`, `"package_hash": "9d77e496e9baa1cbf811baae8a750de2e6b2f404f0d95e9f04cfe23fb403f6e4", "signed_at"`), false},
	{"duplicated version", replace(`"signed_at"`, `"version": 1, "signed_at"`), false},
	{"duplicated through an escape", replace(`"signed_at"`, `"sign\u0061ture": "`+otherSig+`", "signed_at"`), false},
	{"SIGNATURE beside signature (stricter)", replace(`"signed_at"`, `"SIGNATURE": "`+otherSig+`", "signed_at"`), false},
	{"Signature instead of signature", replace(`"signature"`, `"Signature"`), false},
	{"VERSION instead of version", replace(`"version"`, `"VERSION"`), false},
	{"long s folds to signature", replace(`"signed_at"`, `"ſignature": "`+otherSig+`", "signed_at"`), false},
	{"trailing brace", strictGood + "}", false},
	{"trailing bracket", strictGood + "]", false},
	{"trailing object", strictGood + "{}", false},
	{"trailing letter", strictGood + "\nx", false},
	{"trailing NUL", strictGood + "\x00", false},
	{"trailing comma in object", replace("+00:00\"", "+00:00\","), false},
	{"LF escape inside base64", replace("SvJ1/04", `SvJ1\n/04`), false},
	{"CRLF escapes inside base64", replace("SvJ1/04", `SvJ1\r\n/04`), false},
	{"space inside base64", replace("SvJ1/04", `SvJ1 /04`), false},
	{"tab escape inside base64", replace("SvJ1/04", `SvJ1\t/04`), false},
	{"unpadded base64", replace("Cg==", "Cg"), false},
	{"non-zero trailing bits", replace("Cg==", "Ch=="), false},
	{"url-safe base64", replace("SvJ1/04", "SvJ1_04"), false},
	{"missing signed_at", replace(",\n  \"signed_at\": \"2026-01-28T12:00:00+00:00\"", ""), false},
	{"null signed_at", replace(`"2026-01-28T12:00:00+00:00"`, "null"), false},
	{"numeric signed_at", replace(`"2026-01-28T12:00:00+00:00"`, "1769601600"), false},
	{"null signature", replace(`"`+strictGoodSig+`"`, "null"), false},
	{"missing algorithm", replace(`"algorithm": "ed25519",`, ""), false},
	{"missing version", replace(`"version": 1,`, ""), false},
	{"version as string", replace(`"version": 1`, `"version": "1"`), false},
	{"version 1.0", replace(`"version": 1`, `"version": 1.0`), false},
	{"version 1e0", replace(`"version": 1`, `"version": 1e0`), false},
	{"version -1", replace(`"version": 1`, `"version": -1`), false},
	{"version 01", replace(`"version": 1`, `"version": 01`), false},
	{"version null", replace(`"version": 1`, `"version": null`), false},
	{"version 2 (stricter)", replace(`"version": 1`, `"version": 2`), false},
	{"invalid UTF-8 in signed_at", replace("+00:00", "+00:00\xff"), false},
	{"invalid UTF-8 in an unknown field", replace(`"version": 1,`, "\"x\": \"\xc3\x28\", \"version\": 1,"), false},
	{"invalid UTF-8 after the object", strictGood + "\n\xff", false},
	{"byte order mark", "\xef\xbb\xbf" + strictGood, false},
	{"lone surrogate in signed_at", replace("+00:00\"", `+00:00\ud800"`), false},
	{"lone low surrogate in a field name", replace(`"version": 1,`, `"\udc00": 1, "version": 1,`), false},
	{"raw control character in a string", replace("+00:00", "+00:00\x1b"), false},
	{"invalid escape", replace("+00:00", `+00:00\x`), false},
	{"bad literal in unknown field", replace(`"version": 1,`, `"x": nul, "version": 1,`), false},
	{"number out of range in unknown field", replace(`"version": 1,`, `"x": 1e999, "version": 1,`), false},
	{"nesting past the limit", replace(`"version": 1,`, `"deep": `+strings.Repeat("[", maxNesting)+strings.Repeat("]", maxNesting)+`, "version": 1,`), false},
	{"unclosed", strings.TrimSuffix(strictGood, "}"), false},
	{"single quotes", strings.ReplaceAll(strictGood, `"`, `'`), false},
	{"comment", "// c\n" + strictGood, false},
}

func TestParseStrict(t *testing.T) {
	for _, tt := range strictCases {
		t.Run(tt.name, func(t *testing.T) {
			sig, err := Parse([]byte(tt.doc))
			switch {
			case tt.ok && err != nil:
				t.Fatalf("Parse refused a document Cloacina accepts: %v", err)
			case !tt.ok && err == nil:
				t.Fatalf("Parse accepted a document Cloacina refuses: %+v", sig)
			case !tt.ok && !errors.Is(err, errdefs.ErrMalformedSignature):
				t.Fatalf("Parse = %v, want MALFORMED_SIGNATURE", err)
			}
			if simpleOK := simpleParse([]byte(tt.doc)) == nil; simpleOK != tt.ok {
				t.Fatalf("the test's simple reader disagrees with the table (ok=%v)", simpleOK)
			}
		})
	}
}

// TestParseStrictValues: what is read is the one value under the exact
// name, decoded as serde decodes it.
func TestParseStrictValues(t *testing.T) {
	sig, err := Parse([]byte(replace(`"2026-01-28T12:00:00+00:00"`, `"\u001b[32mOK \ud83d\ude00"`)))
	if err != nil {
		t.Fatal(err)
	}
	if sig.SignedAt != "\x1b[32mOK \U0001F600" || sig.Fingerprint != "3097e2dee2cb4a34b53840cdb705aed71067c36f68db0e0f559c3f3fa043315f" {
		t.Fatalf("read %+v", sig)
	}
}

// simpleParse is a second reader of the same rules, written separately and
// deliberately simply on top of encoding/json's token stream, so that the
// fuzz target can compare the two. nil means accepted.
func simpleParse(data []byte) error {
	if len(data) > MaxDocumentSize || !utf8.Valid(data) {
		return errors.New("size or UTF-8")
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	next := func() (json.Token, []byte, error) {
		start := dec.InputOffset()
		tok, err := dec.Token()
		return tok, data[start:dec.InputOffset()], err
	}
	tok, _, err := next()
	if err != nil || tok != json.Delim('{') {
		return errors.New("not an object")
	}
	names := []string{"version", "algorithm", "package_hash", "key_fingerprint", "signature", "signed_at"}
	got := map[string]any{}
	for dec.More() {
		tok, raw, err := next()
		if err != nil || hasLoneSurrogate(raw) {
			return errors.New("bad key")
		}
		key, ok := tok.(string)
		if !ok {
			return errors.New("key not a string")
		}
		known := false
		for _, n := range names {
			if key == n {
				known = true
			} else if strings.EqualFold(key, n) {
				return errors.New("case")
			}
		}
		if _, dup := got[key]; known && dup {
			return errors.New("duplicate")
		}
		// Read the value, counting nesting; the document object is level 1.
		depth := 1
		for {
			tok, raw, err := next()
			if err != nil || hasLoneSurrogate(raw) {
				return errors.New("bad value")
			}
			if n, ok := tok.(json.Number); ok {
				if _, err := strconv.ParseFloat(string(n), 64); err != nil {
					return errors.New("range")
				}
			}
			if _, delim := tok.(json.Delim); known && delim {
				return errors.New("known field holds a container")
			}
			if known {
				got[key] = tok
				break
			}
			switch tok {
			case json.Delim('['), json.Delim('{'):
				depth++
				if depth > maxNesting {
					return errors.New("deep")
				}
			case json.Delim(']'), json.Delim('}'):
				depth--
			}
			if depth == 1 {
				break
			}
		}
	}
	if _, _, err := next(); err != nil { // the closing brace
		return err
	}
	if _, _, err := next(); err != io.EOF {
		return errors.New("trailing data")
	}
	for _, n := range names[1:] {
		if _, ok := got[n].(string); !ok {
			return errors.New("missing or not a string: " + n)
		}
	}
	if got["version"] != json.Number("1") {
		return errors.New("version")
	}
	hex64 := regexp.MustCompile(`^[0-9a-f]{64}$`)
	// 64 bytes: 85 free characters, one whose low 4 bits are zero, "==".
	b64 := regexp.MustCompile(`^[A-Za-z0-9+/]{85}[AQgw]==$`)
	if got["algorithm"] != "ed25519" || !hex64.MatchString(got["package_hash"].(string)) ||
		!hex64.MatchString(got["key_fingerprint"].(string)) || !b64.MatchString(got["signature"].(string)) {
		return errors.New("field contents")
	}
	return nil
}

// hasLoneSurrogate reports a \u escape of a UTF-16 surrogate that is not a
// high surrogate followed by a \u low surrogate, in the raw JSON of a token
// (encoding/json would silently turn it into U+FFFD).
func hasLoneSurrogate(raw []byte) bool {
	s := string(raw)
	for i := 0; i < len(s); i++ {
		if s[i] != '\\' || i+1 >= len(s) {
			continue
		}
		if s[i+1] != 'u' || i+6 > len(s) {
			i++ // skip the escaped character
			continue
		}
		v, _ := strconv.ParseUint(s[i+2:i+6], 16, 32)
		i += 5
		switch {
		case v >= 0xDC00 && v <= 0xDFFF:
			return true
		case v >= 0xD800 && v <= 0xDBFF:
			if i+7 > len(s) || s[i+1:i+3] != `\u` {
				return true
			}
			lo, _ := strconv.ParseUint(s[i+3:i+7], 16, 32)
			if lo < 0xDC00 || lo > 0xDFFF {
				return true
			}
			i += 6
		}
	}
	return false
}

// FuzzParseStrict compares Parse with simpleParse: both must accept or
// both refuse, and Parse's errors are always MALFORMED_SIGNATURE.
func FuzzParseStrict(f *testing.F) {
	for _, tt := range strictCases {
		f.Add([]byte(tt.doc))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		_, err := Parse(data)
		if err != nil && !errors.Is(err, errdefs.ErrMalformedSignature) {
			t.Fatalf("non-malformed error: %v", err)
		}
		if serr := simpleParse(data); (err == nil) != (serr == nil) {
			t.Fatalf("Parse error %v, simple reader error %v, for %q", err, serr, data)
		}
	})
}

// BenchmarkParse reads the document a loader sends with every Verify.
func BenchmarkParse(b *testing.B) {
	doc := []byte(strictGood)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Parse(doc); err != nil {
			b.Fatal(err)
		}
	}
}
