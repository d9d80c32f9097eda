package store

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
)

// The encoders in recordjson.go must write json.Marshal's bytes exactly;
// every test here compares the two on the same value.

// sameAsMarshal checks that enc appends json.Marshal(v)'s bytes, or fails
// as json.Marshal does leaving the buffer as it was, both on an empty
// buffer and after a prefix.
func sameAsMarshal[T any](t testing.TB, enc func([]byte, T) ([]byte, error), v T) {
	t.Helper()
	want, wantErr := json.Marshal(v)
	for _, prefix := range []string{"", "prefix"} {
		got, err := enc([]byte(prefix), v)
		switch {
		case wantErr != nil:
			if err == nil || err.Error() != wantErr.Error() {
				t.Fatalf("%s:\nencoder error %v\njson.Marshal error %v", brief(v), err, wantErr)
			}
			if string(got) != prefix {
				t.Fatalf("%s: after an error the encoder returned %.200q, want the prefix %q", brief(v), got, prefix)
			}
		case err != nil:
			t.Fatalf("%s: encoder error %v; json.Marshal succeeded with\n%.200s", brief(v), err, want)
		case !bytes.Equal(got, append([]byte(prefix), want...)):
			got := got[len(prefix):]
			i := 0
			for i < min(len(got), len(want)) && got[i] == want[i] {
				i++
			}
			from := max(i-40, 0)
			t.Fatalf("%s:\nfirst difference at byte %d of %d (json.Marshal: %d)\nencoder      …%.120q\njson.Marshal …%.120q",
				brief(v), i, len(got), len(want), got[from:], want[from:])
		}
	}
}

// brief is %#v cut short: some test values hold 100 KB strings.
func brief(v any) string {
	s := fmt.Sprintf("%#v", v)
	if len(s) > 400 {
		s = s[:400] + "…"
	}
	return s
}

func sameSignatureRecord(t testing.TB, rec SignatureRecord) {
	t.Helper()
	sameAsMarshal(t, AppendSignatureRecordJSON, rec)
}

func sameAuditRecord(t testing.TB, rec AuditRecord) {
	t.Helper()
	sameAsMarshal(t, AppendAuditRecordJSON, rec)
}

// escapeCases has a string of every class encoding/json escapes or
// rewrites, and the ones it must leave alone.
var escapeCases = map[string]string{
	"empty":               "",
	"plain":               "release@v1",
	"quote and backslash": `a"b\c`,
	"short escapes":       "\b\f\n\r\t",
	"other controls":      "\x00\x01\x07\x0b\x0e\x1f",
	"html":                "<script>&amp;</script>",
	"del and tilde":       "\x7f~",
	"every ascii byte":    asciiBytes(),
	"multibyte":           "é日本語🔑",
	"line separators":     "a\u2028b\u2029c",
	"near separators":     "\u2027\u202a\u2020",
	"replacement char":    "\ufffd",
	"lone continuation":   "a\x80b",
	"high bytes":          "\xfe\xff",
	"truncated rune":      "\xe2\x80",
	"truncated at end":    "ok\xf0\x9f\x94",
	"surrogate":           "\xed\xa0\x80",
	"overlong":            "\xc0\xaf",
	"above U+10FFFF":      "\xf4\x90\x80\x80",
	"long plain":          strings.Repeat("x", 100_000),
	"long escaped":        strings.Repeat("<\u2028\x00\xff", 10_000),
}

func asciiBytes() string {
	var b []byte
	for c := range 128 {
		b = append(b, byte(c))
	}
	return string(b)
}

// zones the records are tested in: the store writes UTC (PrepareEvent),
// but a SignatureRecord's SignedAt is the caller's and the encoders must
// match json.Marshal on any time.
var zones = []*time.Location{
	time.UTC,
	time.Local,
	time.FixedZone("CET", 3600),
	time.FixedZone("IST", 5*3600+1800),
	time.FixedZone("NST", -(3*3600 + 1800)),
	time.FixedZone("LMT", -75), // seconds are dropped: -00:01
	time.FixedZone("tiny", 30), // under a minute: +00:00, not Z
	time.FixedZone("max", 23*3600+59*60),
	time.FixedZone("min", -(23*3600 + 59*60)),
}

var timeCases = map[string]time.Time{
	"zero":            {},
	"unix epoch":      time.Unix(0, 0).UTC(),
	"whole seconds":   time.Date(2024, 2, 29, 23, 59, 59, 0, time.UTC),
	"milliseconds":    time.Date(2024, 2, 29, 23, 59, 59, 120_000_000, time.UTC),
	"trailing zeros":  time.Date(2024, 2, 29, 23, 59, 59, 100, time.UTC),
	"nanoseconds":     time.Date(2024, 2, 29, 23, 59, 59, 999_999_999, time.UTC),
	"year 0":          time.Date(0, 1, 1, 0, 0, 0, 0, time.UTC),
	"year 9999":       time.Date(9999, 12, 31, 23, 59, 59, 999_999_999, time.UTC),
	"monotonic":       time.Now(),
	"monotonic utc":   time.Now().UTC(),
	"positive offset": time.Date(2025, 6, 1, 12, 0, 0, 5, time.FixedZone("", 5*3600+1800)),
	"negative offset": time.Date(2025, 6, 1, 12, 0, 0, 0, time.FixedZone("", -8*3600)),
	"sub-minute zone": time.Date(2025, 6, 1, 12, 0, 0, 0, time.FixedZone("", -75)),
	"local in range":  time.Date(2025, 6, 1, 12, 0, 0, 0, time.Local),
	"max zone":        time.Date(2025, 6, 1, 12, 0, 0, 0, time.FixedZone("", 23*3600+59*60)),
	// json.Marshal fails on these; the encoders must fail the same way.
	"year 10000":    time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC),
	"year -1":       time.Date(-1, 1, 1, 0, 0, 0, 0, time.UTC),
	"zone hour 24":  time.Date(2025, 6, 1, 12, 0, 0, 0, time.FixedZone("", 24*3600)),
	"zone hour -30": time.Date(2025, 6, 1, 12, 0, 0, 0, time.FixedZone("", -30*3600)),
	"zone hour 100": time.Date(2025, 6, 1, 12, 0, 0, 0, time.FixedZone("", 100*3600)),
	// Years in range in UTC, out of it in their zone.
	"year 9999 ahead": time.Date(9999, 12, 31, 23, 0, 0, 0, time.UTC).In(time.FixedZone("", 2*3600)),
	"year 0 behind":   time.Date(0, 1, 1, 0, 30, 0, 0, time.UTC).In(time.FixedZone("", -3600)),
}

// fullSignatureRecord and fullAuditRecord set every field.
func fullSignatureRecord() SignatureRecord {
	return SignatureRecord{
		Digest:       bytes.Repeat([]byte{0xab}, DigestSize),
		Format:       FormatSchemaPin,
		KeyName:      "release",
		KeyVersion:   4_294_967_295,
		Fingerprint:  "3f1d",
		Algorithm:    "ecdsa-p256",
		Signature:    []byte{0xfb, 0xff, 0xbf},
		SignedAt:     time.Date(2025, 1, 2, 3, 4, 5, 6, time.UTC),
		ArtifactName: "pkg.tar.gz",
		Caller:       "uid:1000",
		Document:     []byte(`{"sig":"<x>"}`),
	}
}

func fullAuditRecord() AuditRecord {
	return AuditRecord{
		Seq:      18_446_744_073_709_551_615,
		PrevHash: GenesisHash(),
		AuditEvent: AuditEvent{
			Time: time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC), Caller: "uid:1000",
			Operation: "sign", Key: "release@v1", Org: "acme", Digest: "ab12",
			Outcome: "ok", Detail: "artifact=a", Signature: []byte{1, 2, 3, 4},
		},
		Hash: bytes.Repeat([]byte{0x5a}, AuditHashSize),
	}
}

func TestSignatureRecordJSONTable(t *testing.T) {
	full := fullSignatureRecord()
	cases := map[string]SignatureRecord{
		"zero value":  {},
		"every field": full,
		"optional fields empty": func() SignatureRecord {
			r := full
			r.ArtifactName, r.Caller = "", ""
			return r
		}(),
		"empty non-nil slices": func() SignatureRecord {
			r := full
			r.Digest, r.Signature, r.Document = []byte{}, []byte{}, []byte{}
			return r
		}(),
		"nil slices": func() SignatureRecord {
			r := full
			r.Digest, r.Signature, r.Document = nil, nil, nil
			return r
		}(),
		"base64 padding": func() SignatureRecord {
			r := full
			r.Digest, r.Signature, r.Document = []byte{1}, []byte{1, 2}, []byte{1, 2, 3}
			return r
		}(),
		"long document": func() SignatureRecord {
			r := full
			r.Document = bytes.Repeat([]byte{0xfe, 0x00, '<'}, 100_000)
			return r
		}(),
		"as benchPut writes it": {
			Digest: bytes.Repeat([]byte{7}, 32), Format: FormatCloacina, KeyName: "release", KeyVersion: 1,
			Fingerprint: "3f1d", Algorithm: "ed25519", Signature: bytes.Repeat([]byte{9}, 64),
			SignedAt: time.Now(), Document: bytes.Repeat([]byte{'x'}, 300),
		},
	}
	for name, s := range escapeCases {
		r := full
		r.Format, r.KeyName, r.Fingerprint, r.Algorithm = Format(s), s, s, s
		r.ArtifactName, r.Caller = s, s
		cases["strings "+name] = r
	}
	for name, tm := range timeCases {
		r := full
		r.SignedAt = tm
		cases["time "+name] = r
	}
	for name, rec := range cases {
		t.Run(name, func(t *testing.T) { sameSignatureRecord(t, rec) })
	}
}

func TestAuditRecordJSONTable(t *testing.T) {
	// The same records the decoder's tests read back (recorddecode_test.go).
	for name, rec := range auditRecordCases() {
		t.Run(name, func(t *testing.T) { sameAuditRecord(t, rec) })
	}
}

// TestRecordJSONTimeErrors pins that the times json.Marshal refuses are
// refused, and not written some other way.
func TestRecordJSONTimeErrors(t *testing.T) {
	for _, name := range []string{"year 10000", "year -1", "zone hour 24", "zone hour -30", "zone hour 100", "year 9999 ahead", "year 0 behind"} {
		s := fullSignatureRecord()
		s.SignedAt = timeCases[name]
		if _, err := AppendSignatureRecordJSON(nil, s); err == nil {
			t.Errorf("%s: signature record encoded without an error", name)
		}
		a := fullAuditRecord()
		a.Time = timeCases[name]
		if _, err := AppendAuditRecordJSON(nil, a); err == nil {
			t.Errorf("%s: audit record encoded without an error", name)
		}
	}
}

// TestRecordJSONSize checks that the size hints fit the longest encoding
// of records whose strings need no escaping, so that the call sites
// allocate once.
func TestRecordJSONSize(t *testing.T) {
	longest := time.Date(2025, 12, 31, 23, 59, 59, 1, time.FixedZone("", -(23*3600+59*60)))
	sig := fullSignatureRecord()
	sig.SignedAt = longest
	if got, err := AppendSignatureRecordJSON(nil, sig); err != nil || len(got) > SignatureRecordJSONSize(sig) {
		t.Errorf("signature record: %d bytes, %v; SignatureRecordJSONSize %d", len(got), err, SignatureRecordJSONSize(sig))
	}
	audit := fullAuditRecord()
	audit.Time = longest
	if got, err := AppendAuditRecordJSON(nil, audit); err != nil || len(got) > AuditRecordJSONSize(audit) {
		t.Errorf("audit record: %d bytes, %v; AuditRecordJSONSize %d", len(got), err, AuditRecordJSONSize(audit))
	}
}

// jsonNames lists the JSON member names encoding/json gives t's fields,
// embedded structs' fields promoted in place, as it orders them.
func jsonNames(t reflect.Type) []string {
	var names []string
	for i := range t.NumField() {
		f := t.Field(i)
		tag := f.Tag.Get("json")
		if !f.IsExported() && !f.Anonymous || tag == "-" {
			continue
		}
		name, _, _ := strings.Cut(tag, ",")
		if f.Anonymous && name == "" && f.Type.Kind() == reflect.Struct {
			names = append(names, jsonNames(f.Type)...)
			continue
		}
		if name == "" {
			name = f.Name
		}
		names = append(names, name)
	}
	return names
}

// memberNames lists the member names of a JSON object in order.
func memberNames(t *testing.T, raw []byte) []string {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(raw))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		t.Fatalf("%s is not an object: %v %v", raw, tok, err)
	}
	var names []string
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			t.Fatal(err)
		}
		names = append(names, tok.(string))
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			t.Fatal(err)
		}
	}
	return names
}

// TestRecordJSONKnowsEveryField fails when SignatureRecord, AuditRecord or
// AuditEvent gains a JSON field the encoders do not write: recordjson.go
// must then learn it (and the random tests' filler its type, if new).
func TestRecordJSONKnowsEveryField(t *testing.T) {
	sig, err := AppendSignatureRecordJSON(nil, fill[SignatureRecord](rand.New(rand.NewPCG(1, 2)), t, true))
	if err != nil {
		t.Fatal(err)
	}
	if got, want := memberNames(t, sig), jsonNames(reflect.TypeFor[SignatureRecord]()); !slices.Equal(got, want) {
		t.Errorf("AppendSignatureRecordJSON writes %q;\nstore.SignatureRecord has %q", got, want)
	}
	audit, err := AppendAuditRecordJSON(nil, fill[AuditRecord](rand.New(rand.NewPCG(1, 2)), t, true))
	if err != nil {
		t.Fatal(err)
	}
	if got, want := memberNames(t, audit), jsonNames(reflect.TypeFor[AuditRecord]()); !slices.Equal(got, want) {
		t.Errorf("AppendAuditRecordJSON writes %q;\nstore.AuditRecord has %q", got, want)
	}
}

// fill returns a random T with every field set through reflection, so a
// field added to T is set too and the differential tests see it; a field
// of a kind fill does not know fails the test. full makes every string and
// slice non-empty and every time encodable.
func fill[T any](r *rand.Rand, t testing.TB, full bool) T {
	var v T
	fillValue(r, t, reflect.ValueOf(&v).Elem(), reflect.TypeFor[T]().Name(), full)
	return v
}

func fillValue(r *rand.Rand, t testing.TB, v reflect.Value, path string, full bool) {
	if v.Type() == reflect.TypeFor[time.Time]() {
		v.Set(reflect.ValueOf(randomTime(r, full)))
		return
	}
	switch v.Kind() {
	case reflect.Struct:
		for i := range v.NumField() {
			fillValue(r, t, v.Field(i), path+"."+v.Type().Field(i).Name, full)
		}
	case reflect.String:
		v.SetString(randomString(r, full))
	case reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		v.SetUint(randomUint(r) >> (64 - v.Type().Bits()))
	case reflect.Slice:
		if v.Type().Elem().Kind() != reflect.Uint8 {
			t.Fatalf("%s: a %s field, unknown to the record encoders' tests", path, v.Type())
		}
		v.SetBytes(randomBytes(r, full))
	default:
		t.Fatalf("%s: a %s field, unknown to the record encoders' tests", path, v.Type())
	}
}

func randomUint(r *rand.Rand) uint64 {
	switch r.IntN(4) {
	case 0:
		return uint64(r.IntN(10))
	case 1:
		return ^uint64(0) - uint64(r.IntN(10))
	}
	return r.Uint64() >> r.IntN(64)
}

// stringPieces are the fragments random strings are built of: a piece of
// every class of escaping, plain text, and invalid UTF-8.
var stringPieces = []string{
	"a", "release", "uid:1000", " ", "~", "\x7f", `"`, `\`, "/", "<", ">", "&",
	"\b", "\f", "\n", "\r", "\t", "\x00", "\x1f", "\x0b",
	"é", "日", "🔑", "\u2028", "\u2029", "\u2027", "\ufffd", "\uffff",
	"\x80", "\xbf", "\xc0", "\xc3", "\xe2\x80", "\xed\xa0\x80", "\xf0\x9f\x94", "\xf4\x90\x80\x80", "\xff",
}

func randomString(r *rand.Rand, full bool) string {
	n := r.IntN(12)
	switch r.IntN(50) {
	case 0, 1, 2:
		n = 0
	case 3:
		n = 200 + r.IntN(2000)
	}
	if full && n == 0 {
		n = 1
	}
	var b strings.Builder
	for range n {
		if r.IntN(4) == 0 {
			b.WriteByte(byte(r.IntN(256)))
		} else {
			b.WriteString(stringPieces[r.IntN(len(stringPieces))])
		}
	}
	return b.String()
}

func randomBytes(r *rand.Rand, full bool) []byte {
	switch k := r.IntN(10); {
	case k == 0 && !full:
		return nil
	case k == 1 && !full:
		return []byte{}
	}
	n := 1 + r.IntN(100)
	if r.IntN(50) == 0 {
		n = 1 + r.IntN(5000)
	}
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

// randomTime returns times of years 0 to 9999 in assorted zones, with and
// without fractions and monotonic readings, and unless full now and then
// the zero time or a time json.Marshal refuses.
func randomTime(r *rand.Rand, full bool) time.Time {
	if !full {
		switch r.IntN(50) {
		case 0:
			return time.Time{}
		case 1:
			return time.Date(10000+r.IntN(100_000), 1, 1, 0, 0, 0, 0, time.UTC)
		case 2:
			return time.Date(-r.IntN(100_000)-1, 1, 1, 0, 0, 0, 0, time.UTC)
		case 3:
			off := 24*3600 + r.IntN(1000*3600)
			if r.IntN(2) == 0 {
				off = -off
			}
			return time.Now().In(time.FixedZone("", off))
		case 4:
			return time.Now()
		}
	}
	min, max := time.Date(0, 1, 2, 0, 0, 0, 0, time.UTC).Unix(), time.Date(9999, 12, 30, 0, 0, 0, 0, time.UTC).Unix()
	var nsec int64
	switch r.IntN(4) {
	case 1:
		nsec = r.Int64N(1000) * 1_000_000
	case 2:
		nsec = r.Int64N(1_000_000) * 1000
	case 3:
		nsec = r.Int64N(1_000_000_000)
	}
	tm := time.Unix(min+r.Int64N(max-min), nsec)
	if r.IntN(2) == 0 {
		return tm.UTC()
	}
	if r.IntN(2) == 0 {
		return tm.In(zones[r.IntN(len(zones))])
	}
	return tm.In(time.FixedZone("", r.IntN(2*24*3600-1)-(24*3600-1)))
}

// randomSource is a new seed each run, logged if the test fails.
func randomSource(t *testing.T, stream uint64) *rand.Rand {
	seed := uint64(time.Now().UnixNano())
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("random seed %d, stream %d", seed, stream)
		}
	})
	return rand.New(rand.NewPCG(seed, stream))
}

func TestSignatureRecordJSONRandom(t *testing.T) {
	r := randomSource(t, 1)
	for i := range 10_000 {
		sameSignatureRecord(t, fill[SignatureRecord](r, t, i%2 == 0))
	}
}

func TestAuditRecordJSONRandom(t *testing.T) {
	r := randomSource(t, 2)
	for i := range 10_000 {
		sameAuditRecord(t, fill[AuditRecord](r, t, i%2 == 0))
	}
}

// FuzzRecordJSON feeds the fuzzer's strings, bytes, numbers and times to
// both encoders and compares them with json.Marshal.
func FuzzRecordJSON(f *testing.F) {
	f.Add("release", "uid:1000", "artifact=a", []byte{1, 2, 3}, []byte("doc"), uint64(1), int64(1_700_000_000), int64(0), int32(0), uint8(0))
	f.Add("<&>\u2028", "\x00\x1f\x7f", "\xff\xe2\x80", []byte{}, []byte{0xfb, 0xff}, ^uint64(0), int64(-62_135_596_800), int64(999_999_999), int32(-75), uint8(3))
	f.Add("", "", "", []byte(nil), []byte(nil), uint64(0), int64(253_402_300_799), int64(1), int32(86_399), uint8(255))
	f.Add("é日🔑", `"\`, "\ufffd", []byte{0}, []byte{0, 0}, uint64(42), int64(253_402_300_800), int64(0), int32(0), uint8(1))
	f.Fuzz(func(t *testing.T, s1, s2, s3 string, b1, b2 []byte, n uint64, sec, nsec int64, offset int32, nils uint8) {
		if nils&1 != 0 {
			b1 = nil
		}
		if nils&2 != 0 {
			b2 = nil
		}
		tm := time.Unix(sec, nsec)
		if nils&4 == 0 {
			tm = tm.In(time.FixedZone("", int(offset)))
		} else {
			tm = tm.UTC()
		}
		sameSignatureRecord(t, SignatureRecord{
			Digest: b1, Format: Format(s1), KeyName: s2, KeyVersion: uint32(n), Fingerprint: s3,
			Algorithm: s1, Signature: b2, SignedAt: tm, ArtifactName: s2, Caller: s3, Document: b1,
		})
		sameAuditRecord(t, AuditRecord{
			Seq: n, PrevHash: b2,
			AuditEvent: AuditEvent{
				Time: tm, Caller: s1, Operation: s2, Key: s3, Org: s1, Digest: s2,
				Outcome: s3, Detail: s1, Signature: b1,
			},
			Hash: b1,
		})
	})
}

// BenchmarkRecordJSON compares the encoders with json.Marshal on the
// records one signature stores, sized as benchPut's in boltstore.
func BenchmarkRecordJSON(b *testing.B) {
	sig := SignatureRecord{
		Digest: bytes.Repeat([]byte{7}, 32), Format: FormatCloacina, KeyName: "release", KeyVersion: 1,
		Fingerprint: "3f1d", Algorithm: "ed25519", Signature: bytes.Repeat([]byte{9}, 64),
		SignedAt: time.Now().UTC(), Document: bytes.Repeat([]byte{'x'}, 300),
	}
	audit := AuditRecord{
		Seq: 12345, PrevHash: bytes.Repeat([]byte{3}, 32),
		AuditEvent: AuditEvent{
			Time: time.Now().UTC(), Caller: "uid:1000", Operation: "sign", Key: "release@v1",
			Digest: strings.Repeat("ab", 32), Outcome: "ok", Detail: "artifact=a",
			Signature: bytes.Repeat([]byte{9}, 64),
		},
		Hash: bytes.Repeat([]byte{4}, 32),
	}
	encoders := []struct {
		name   string
		encode func() error
	}{
		{"SignatureRecord/json.Marshal", func() error { _, err := json.Marshal(sig); return err }},
		{"SignatureRecord/append", func() error {
			_, err := AppendSignatureRecordJSON(make([]byte, 0, SignatureRecordJSONSize(sig)), sig)
			return err
		}},
		{"AuditRecord/json.Marshal", func() error { _, err := json.Marshal(audit); return err }},
		{"AuditRecord/append", func() error {
			_, err := AppendAuditRecordJSON(make([]byte, 0, AuditRecordJSONSize(audit)), audit)
			return err
		}},
	}
	for _, e := range encoders {
		b.Run(e.name, func(b *testing.B) {
			for b.Loop() {
				if err := e.encode(); err != nil {
					b.Fatal(err)
				}
			}
		})
		// Each on a new goroutine, as a request handler runs it: its
		// stack starts small, and json.Marshal's deep reflection grows
		// (copies) it. The goroutine's start is in both.
		b.Run(e.name+"/new-goroutine", func(b *testing.B) {
			done := make(chan error)
			for b.Loop() {
				go func() { done <- e.encode() }()
				if err := <-done; err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
