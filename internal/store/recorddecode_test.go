package store

import (
	"bytes"
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

// DecodeAuditRecordJSON must return json.Unmarshal's value and error for
// any input; every test here compares the two on the same bytes.

// sameAsUnmarshal checks DecodeAuditRecordJSON against json.Unmarshal on
// data, and that the fast path is taken exactly when it can be: when data
// is the encoding of what json.Unmarshal reads from it. It reports whether
// the fast path was taken.
func sameAsUnmarshal(t testing.TB, data []byte) bool {
	t.Helper()
	var want AuditRecord
	wantErr := json.Unmarshal(data, &want)
	got, err := DecodeAuditRecordJSON(data)
	switch {
	case (err == nil) != (wantErr == nil):
		t.Fatalf("%.300q:\nDecodeAuditRecordJSON error %v\njson.Unmarshal error %v", data, err, wantErr)
	case err != nil && err.Error() != wantErr.Error():
		t.Fatalf("%.300q:\nDecodeAuditRecordJSON error %v\njson.Unmarshal error %v", data, err, wantErr)
	case !reflect.DeepEqual(got, want):
		t.Fatalf("%.300q:\nDecodeAuditRecordJSON %s\njson.Unmarshal        %s", data, brief(got), brief(want))
	}
	fast, ok := decodeAuditFast(data)
	canonical := false
	if wantErr == nil {
		enc, err := AppendAuditRecordJSON(nil, want)
		canonical = err == nil && bytes.Equal(enc, data)
	}
	if ok != canonical {
		t.Fatalf("%.300q: fast path taken %v, but the input is json.Marshal of json.Unmarshal's value: %v", data, ok, canonical)
	}
	if ok && !reflect.DeepEqual(fast, want) {
		t.Fatalf("%.300q: fast path %s, json.Unmarshal %s", data, brief(fast), brief(want))
	}
	return ok
}

// auditRecordCases are records as the store might hold them: every field
// set or empty, nil and empty byte slices, strings of every escape class
// (escapeCases) in every string field, and every time of timeCases.
func auditRecordCases() map[string]AuditRecord {
	full := fullAuditRecord()
	cases := map[string]AuditRecord{
		"zero value":  {},
		"every field": full,
		"optional fields empty": func() AuditRecord {
			r := full
			r.Key, r.Org, r.Digest, r.Detail, r.Signature = "", "", "", "", nil
			return r
		}(),
		"empty non-nil signature": func() AuditRecord {
			r := full
			r.Signature = []byte{}
			return r
		}(),
		"nil hashes": func() AuditRecord {
			r := full
			r.PrevHash, r.Hash = nil, nil
			return r
		}(),
		"empty non-nil hashes": func() AuditRecord {
			r := full
			r.PrevHash, r.Hash = []byte{}, []byte{}
			return r
		}(),
		"base64 padding": func() AuditRecord {
			r := full
			r.PrevHash, r.Signature, r.Hash = []byte{1}, []byte{1, 2}, []byte{1, 2, 3}
			return r
		}(),
		"long byte slices": func() AuditRecord {
			r := full
			r.PrevHash, r.Signature, r.Hash = bytes.Repeat([]byte{0xfe}, 10_000), bytes.Repeat([]byte{0}, 5000), []byte{0xff}
			return r
		}(),
		"seq 0": func() AuditRecord {
			r := full
			r.Seq = 0
			return r
		}(),
		"as PutSignature writes it": typicalAuditRecord(),
	}
	for name, s := range escapeCases {
		r := full
		r.Caller, r.Operation, r.Key, r.Org, r.Digest, r.Outcome, r.Detail = s, s, s, s, s, s, s
		cases["strings "+name] = r
		r = full
		r.Detail = s
		cases["detail "+name] = r
	}
	for name, tm := range timeCases {
		r := full
		r.Time = tm
		cases["time "+name] = r
	}
	return cases
}

// typicalAuditRecord is a signature's audit record as PutSignature writes
// it.
func typicalAuditRecord() AuditRecord {
	return AuditRecord{
		Seq: 1_234_567, PrevHash: bytes.Repeat([]byte{3}, AuditHashSize),
		AuditEvent: AuditEvent{
			Time: time.Date(2025, 6, 1, 12, 34, 56, 789_012_345, time.UTC), Caller: "uid:1000",
			Operation: "sign", Key: "release@v1", Digest: strings.Repeat("ab", 32),
			Outcome: "ok", Detail: "artifact=bench", Signature: bytes.Repeat([]byte{9}, 64),
		},
		Hash: bytes.Repeat([]byte{4}, AuditHashSize),
	}
}

// validStrings reports whether every string of r is valid UTF-8: only
// those survive json.Marshal unchanged, so only records of them can take
// the fast path.
func validStrings(r AuditRecord) bool {
	for _, s := range []string{r.Caller, r.Operation, r.Key, r.Org, r.Digest, r.Outcome, r.Detail} {
		if !utf8.ValidString(s) {
			return false
		}
	}
	return true
}

func TestDecodeAuditRecordEncoded(t *testing.T) {
	for name, rec := range auditRecordCases() {
		t.Run(name, func(t *testing.T) {
			data, err := AppendAuditRecordJSON(nil, rec)
			if err != nil {
				return // json.Marshal refuses the time too: never stored
			}
			fast := sameAsUnmarshal(t, data)
			if validStrings(rec) && !fast {
				t.Fatalf("the store's encoding of %s took the slow path", brief(rec))
			}
			if fast {
				// What the store hands out must be safe to append to.
				got, _ := DecodeAuditRecordJSON(data)
				prev := bytes.Clone(got.Signature)
				_ = append(got.PrevHash, 0xAA)
				if !bytes.Equal(got.Signature, prev) {
					t.Fatal("appending to PrevHash wrote into Signature")
				}
			}
		})
	}
}

func TestDecodeAuditRecordRandom(t *testing.T) {
	r := randomSource(t, 3)
	for i := range 10_000 {
		rec := fill[AuditRecord](r, t, i%2 == 0)
		// The store writes UTC times only (store.PrepareEvent). A zone
		// offset under a minute formats as "+00:00" and reads back as a
		// zone that formats as "Z", so such a record is no fixed point of
		// decode and encode and rightly takes the slow path.
		rec.Time = rec.Time.UTC()
		if data, err := AppendAuditRecordJSON(nil, rec); err == nil {
			if fast := sameAsUnmarshal(t, data); validStrings(rec) && !fast {
				t.Fatalf("the store's encoding of %s took the slow path", brief(rec))
			}
		}
	}
}

// canonicalAudit is a record as the store writes it; the hand-made cases
// below edit it into JSON the store never writes.
const canonicalAudit = `{"seq":7,"prev_hash":"AQID","time":"2025-06-01T12:00:00.5Z","caller":"uid:1000","operation":"sign",` +
	`"key":"release@v1","digest":"abcd","outcome":"ok","detail":"a\u003cb","signature":"CQkJ","hash":"BAQE"}`

// nonCanonical maps a name to a replacement of one piece of canonicalAudit
// (old → new), or to a whole input when old is empty.
var nonCanonical = map[string][2]string{
	"canonical": {"", canonicalAudit},
	// Layout.
	"reordered keys":       {`"seq":7,"prev_hash":"AQID"`, `"prev_hash":"AQID","seq":7`},
	"space after colon":    {`"seq":7`, `"seq": 7`},
	"leading whitespace":   {`{"seq"`, " \n\t{\"seq\""},
	"trailing whitespace":  {`"BAQE"}`, "\"BAQE\"} \n"},
	"space before brace":   {`"BAQE"}`, `"BAQE" }`},
	"trailing garbage":     {`"BAQE"}`, `"BAQE"}x`},
	"two objects":          {`"BAQE"}`, `"BAQE"}{}`},
	"unknown key":          {`"seq":7,`, `"seq":7,"extra":[1,{"a":null}],`},
	"unknown key at end":   {`"BAQE"}`, `"BAQE","zzz":1}`},
	"key in another case":  {`"caller"`, `"Caller"`},
	"key escaped":          {`"caller"`, `"c\u0061ller"`},
	"duplicated key":       {`"outcome":"ok"`, `"outcome":"ok","outcome":"denied"`},
	"duplicated signature": {`"signature":"CQkJ"`, `"signature":"CQkJ","signature":null`},
	"duplicated seq":       {`"seq":7,`, `"seq":7,"seq":8,`},
	"trailing comma":       {`"BAQE"}`, `"BAQE",}`},
	"empty":                {"", ""},
	"empty object":         {"", "{}"},
	"null":                 {"", "null"},
	"array":                {"", "[]"},
	"string":               {"", `"x"`},
	// Strings written differently.
	"\\u0041":           {`"uid:1000"`, `"uid:\u0041"`},
	"\\/":               {`"uid:1000"`, `"uid\/1000"`},
	"uppercase hex":     {`a\u003cb`, `a\u003Cb`},
	"raw <":             {`a\u003cb`, `a<b`},
	"\\u000a for \\n":   {`a\u003cb`, `a\u000ab`},
	"\\u2028":           {`a\u003cb`, `a\u2028b`},
	"raw U+2028":        {`a\u003cb`, "a\u2028b"},
	"\\ufffd":           {`a\u003cb`, `a\ufffdb`},
	"raw U+FFFD":        {`a\u003cb`, "a\ufffdb"},
	"raw invalid UTF-8": {`a\u003cb`, "a\xffb"},
	"raw control byte":  {`a\u003cb`, "a\x01b"},
	"raw DEL":           {`a\u003cb`, "a\x7fb"},
	"surrogate pair":    {`a\u003cb`, `a\ud83d\udd11b`},
	"lone surrogate":    {`a\u003cb`, `a\ud800b`},
	"bad escape":        {`a\u003cb`, `a\qb`},
	"short \\u":         {`a\u003cb`, `a\u03`},
	"unterminated":      {`"ok","detail"`, `"ok,"detail"`},
	"empty omitempty":   {`"digest":"abcd"`, `"digest":""`},
	"absent required":   {`"caller":"uid:1000",`, ``},
	// Numbers.
	"seq leading zeros":  {`"seq":7`, `"seq":007`},
	"seq exponent":       {`"seq":7`, `"seq":7e0`},
	"seq fraction":       {`"seq":7`, `"seq":7.0`},
	"seq negative":       {`"seq":7`, `"seq":-7`},
	"seq plus":           {`"seq":7`, `"seq":+7`},
	"seq max":            {`"seq":7`, `"seq":18446744073709551615`},
	"seq overflow":       {`"seq":7`, `"seq":18446744073709551616`},
	"seq far overflow":   {`"seq":7`, `"seq":99999999999999999999999`},
	"seq string":         {`"seq":7`, `"seq":"7"`},
	"seq zero":           {`"seq":7`, `"seq":0`},
	"seq leading zero 0": {`"seq":7`, `"seq":00`},
	// Byte slices.
	"base64 unpadded":     {`"AQID"`, `"AQI"`},
	"base64 padded":       {`"AQID"`, `"AQI="`},
	"base64 extra bits":   {`"AQID"`, `"AQJ="`},
	"base64 url alphabet": {`"CQkJ"`, `"-_-_"`},
	"base64 newline":      {`"AQID"`, `"AQ\nID"`},
	"base64 escaped CR":   {`"AQID"`, `"AQ\rID"`},
	"base64 escaped":      {`"AQID"`, `"AQ\u0049D"`},
	"base64 empty":        {`"AQID"`, `""`},
	"base64 garbage":      {`"AQID"`, `"!!!!"`},
	"signature empty":     {`"CQkJ"`, `""`},
	"bytes as array":      {`"AQID"`, `[1,2,3]`},
	// Times.
	"time no fraction":     {`12:00:00.5Z`, `12:00:00Z`},
	"time trailing zero":   {`12:00:00.5Z`, `12:00:00.50Z`},
	"time +00:00":          {`12:00:00.5Z`, `12:00:00.5+00:00`},
	"time offset":          {`12:00:00.5Z`, `12:00:00.5+05:30`},
	"time -00:00":          {`12:00:00.5Z`, `12:00:00.5-00:00`},
	"time lowercase":       {`2025-06-01T12:00:00.5Z`, `2025-06-01t12:00:00.5z`},
	"time comma":           {`12:00:00.5Z`, `12:00:00,5Z`},
	"time zero":            {`2025-06-01T12:00:00.5Z`, `0001-01-01T00:00:00Z`},
	"time year 0":          {`2025-06-01T12:00:00.5Z`, `0000-01-01T00:00:00Z`},
	"time 24:00":           {`12:00:00.5Z`, `24:00:00Z`},
	"time leap second":     {`12:00:00.5Z`, `23:59:60Z`},
	"time Feb 30":          {`2025-06-01`, `2025-02-30`},
	"time escaped":         {`2025-06-01T`, `2025-06-01\u0054`},
	"time bad zone":        {`12:00:00.5Z`, `12:00:00.5+24:00`},
	"time ten fractions":   {`12:00:00.5Z`, `12:00:00.1234567891Z`},
	"time space":           {`2025-06-01T`, `2025-06-01 `},
	"time number":          {`"2025-06-01T12:00:00.5Z"`, `1748779200`},
	"time unterminated":    {`12:00:00.5Z"`, `12:00:00.5Z`},
	"time with quote":      {`12:00:00.5Z`, `12:00:00.5Z\"`},
	"time of empty string": {`"2025-06-01T12:00:00.5Z"`, `""`},
	// null, and wrong types, everywhere.
	"seq null":       {`"seq":7`, `"seq":null`},
	"prev_hash null": {`"prev_hash":"AQID"`, `"prev_hash":null`},
	"time null":      {`"time":"2025-06-01T12:00:00.5Z"`, `"time":null`},
	"caller null":    {`"caller":"uid:1000"`, `"caller":null`},
	"key null":       {`"key":"release@v1"`, `"key":null`},
	"signature null": {`"signature":"CQkJ"`, `"signature":null`},
	"hash null":      {`"hash":"BAQE"`, `"hash":null`},
	"caller number":  {`"caller":"uid:1000"`, `"caller":1000`},
	"caller object":  {`"caller":"uid:1000"`, `"caller":{}`},
	"caller true":    {`"caller":"uid:1000"`, `"caller":true`},
	"hash number":    {`"hash":"BAQE"`, `"hash":4`},
	"seq bool":       {`"seq":7`, `"seq":false`},
}

// nonCanonicalInputs builds the inputs of nonCanonical.
func nonCanonicalInputs(t testing.TB) map[string][]byte {
	out := make(map[string][]byte, len(nonCanonical))
	for name, c := range nonCanonical {
		if c[0] == "" {
			out[name] = []byte(c[1])
			continue
		}
		if strings.Count(canonicalAudit, c[0]) != 1 {
			t.Fatalf("%s: %q is not in the canonical record exactly once", name, c[0])
		}
		out[name] = []byte(strings.Replace(canonicalAudit, c[0], c[1], 1))
	}
	return out
}

func TestDecodeAuditRecordNonCanonical(t *testing.T) {
	for name, data := range nonCanonicalInputs(t) {
		t.Run(name, func(t *testing.T) {
			fast := sameAsUnmarshal(t, data)
			if name == "canonical" && !fast {
				t.Fatal("the canonical record took the slow path")
			}
		})
	}
}

// TestDecodeAuditRecordTruncated cuts records at every byte.
func TestDecodeAuditRecordTruncated(t *testing.T) {
	data, err := AppendAuditRecordJSON(nil, typicalAuditRecord())
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range [][]byte{data, []byte(canonicalAudit)} {
		for i := range len(d) {
			sameAsUnmarshal(t, d[:i])
		}
	}
}

// TestDecodeAuditRecordBytes pins the nil and empty byte slices the fast
// path hands out: nil for null and an absent signature, non-nil for "".
func TestDecodeAuditRecordBytes(t *testing.T) {
	rec := fullAuditRecord()
	rec.PrevHash, rec.Hash, rec.Signature = nil, []byte{}, nil
	data, err := AppendAuditRecordJSON(nil, rec)
	if err != nil {
		t.Fatal(err)
	}
	got, ok := decodeAuditFast(data)
	if !ok {
		t.Fatalf("%s took the slow path", data)
	}
	if got.PrevHash != nil || got.Signature != nil || got.Hash == nil || len(got.Hash) != 0 {
		t.Fatalf("prev_hash %#v, signature %#v, hash %#v; want nil, nil, []byte{}", got.PrevHash, got.Signature, got.Hash)
	}
}

// TestDecodeAuditRecordUsesFastPath checks that DecodeAuditRecordJSON
// itself takes the fast path (the tests above call decodeAuditFast too),
// by its allocations: one for the strings, one for the byte slices, where
// json.Unmarshal makes about fifteen.
func TestDecodeAuditRecordUsesFastPath(t *testing.T) {
	data, err := AppendAuditRecordJSON(nil, typicalAuditRecord())
	if err != nil {
		t.Fatal(err)
	}
	allocs := testing.AllocsPerRun(100, func() {
		if _, err := DecodeAuditRecordJSON(data); err != nil {
			t.Fatal(err)
		}
	})
	if allocs > 2 {
		t.Fatalf("DecodeAuditRecordJSON allocates %v times per record, want 2: has it left the fast path?", allocs)
	}
}

// FuzzAuditRecordDecode compares DecodeAuditRecordJSON with json.Unmarshal
// on arbitrary bytes, from the store's encodings and the hand-made cases.
func FuzzAuditRecordDecode(f *testing.F) {
	for _, rec := range auditRecordCases() {
		if data, err := AppendAuditRecordJSON(nil, rec); err == nil && len(data) < 4096 {
			f.Add(data)
		}
	}
	for _, data := range nonCanonicalInputs(f) {
		f.Add(data)
	}
	f.Fuzz(func(t *testing.T, data []byte) { sameAsUnmarshal(t, data) })
}

// BenchmarkAuditRecordDecode compares json.Unmarshal with
// DecodeAuditRecordJSON on a signature's audit record.
func BenchmarkAuditRecordDecode(b *testing.B) {
	data, err := AppendAuditRecordJSON(nil, typicalAuditRecord())
	if err != nil {
		b.Fatal(err)
	}
	b.Run("json.Unmarshal", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			var rec AuditRecord
			if err := json.Unmarshal(data, &rec); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("DecodeAuditRecordJSON", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := DecodeAuditRecordJSON(data); err != nil {
				b.Fatal(err)
			}
		}
	})
}
