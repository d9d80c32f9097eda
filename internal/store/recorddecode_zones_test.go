package store

import (
	"bytes"
	"testing"
	"time"
)

// TestDecodeAuditRecordZonesAndMutations: inputs chosen to split the fast path
// from json.Unmarshal — times in Local, in zones that format alike
// (sub-minute and historic offsets, "+00:00" vs "Z", "-00:00"), member
// names in another case, duplicates, unknown members, escapes json.Marshal
// does not write — and that the byte slices it returns do not alias.
func TestDecodeAuditRecordZonesAndMutations(t *testing.T) {
	base := typicalAuditRecord()
	monrovia, _ := time.LoadLocation("Africa/Monrovia")
	times := []time.Time{
		time.Date(2024, 3, 10, 2, 30, 0, 0, time.Local),
		time.Date(1960, 1, 1, 0, 0, 0, 0, time.Local),
		time.Date(2024, 1, 1, 0, 0, 0, 1, time.FixedZone("", 30)),
		time.Date(2024, 1, 1, 0, 0, 0, 0, time.FixedZone("X", 0)),
		time.Date(2024, 1, 1, 0, 0, 0, 0, time.FixedZone("", -59)),
		time.Date(2024, 1, 1, 0, 0, 0, 0, time.FixedZone("", 23*3600+59*60)),
	}
	if monrovia != nil {
		times = append(times, time.Date(1960, 6, 1, 0, 0, 0, 0, monrovia))
	}
	for _, tm := range times {
		r := base
		r.Time = tm
		data, err := AppendAuditRecordJSON(nil, r)
		if err != nil {
			t.Fatal(err)
		}
		sameAsUnmarshal(t, data)
	}
	data, err := AppendAuditRecordJSON(nil, base)
	if err != nil {
		t.Fatal(err)
	}
	s := string(data)
	for _, mut := range []struct{ from, to string }{
		{`"seq":`, `"Seq":`},
		{`"hash":`, `"HASH":`},
		{`"caller":`, `"Caller":`},
		{`{"seq":`, `{"seq":7,"seq":`},
		{`,"hash":`, `,"x":1,"hash":`},
		{`,"hash":`, `,"Prev_Hash":null,"hash":`},
		{`,"hash":`, `,"prev_hash":null,"hash":`},
		{`,"hash":`, `,"signature":null,"hash":`},
		{`,"hash":`, `,"Signature":"AA==","hash":`},
		{`,"hash":`, `,"time":"2000-01-01T00:00:00Z","hash":`},
		{`Z"`, `+00:00"`},
		{`Z"`, `-00:00"`},
		{`Z"`, `z"`},
		{`"outcome":"`, `"outcome":"\u006f`},
		{`"outcome":"`, `"outcome":"\/`},
		{`"outcome":"`, `"outcome":"\U003c`},
	} {
		if !bytes.Contains(data, []byte(mut.from)) {
			t.Fatalf("%q not in %s", mut.from, data)
		}
		in := []byte(replaceOnce(s, mut.from, mut.to))
		if sameAsUnmarshal(t, in) {
			t.Errorf("%s took the fast path", in)
		}
	}
	// The returned slices must not alias: appending to or writing one
	// leaves the others alone.
	rec, err := DecodeAuditRecordJSON(data)
	if err != nil {
		t.Fatal(err)
	}
	ph, sg, h := bytes.Clone(rec.PrevHash), bytes.Clone(rec.Signature), bytes.Clone(rec.Hash)
	_ = append(rec.PrevHash, 0xAA, 0xAA, 0xAA)
	_ = append(rec.Signature, 0xBB, 0xBB, 0xBB)
	if !bytes.Equal(rec.Signature, sg) || !bytes.Equal(rec.Hash, h) || !bytes.Equal(rec.PrevHash, ph) {
		t.Fatal("an append to one returned slice wrote into another")
	}
}

func replaceOnce(s, from, to string) string {
	i := bytes.Index([]byte(s), []byte(from))
	return s[:i] + to + s[i+len(from):]
}
