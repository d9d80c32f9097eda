package skill

import (
	"bytes"
	"errors"
	"slices"
	"testing"

	"github.com/signerd/signerd/internal/errdefs"
)

func TestPinStore(t *testing.T) {
	flat := []byte(`{"sample-skill@example.com":"` + testKeyFP + `","b@x":"sha256:bb"}`)
	s, err := ParsePinStore(flat)
	if err != nil {
		t.Fatal(err)
	}
	if s.Check("sample-skill", "example.com", testKeyFP) != PinPinned || s.Check("sample-skill", "example.com", "sha256:cc") != PinChanged || s.Check("new", "example.com", "x") != PinFirstUse {
		t.Error("Check")
	}
	if s.Len() != 2 {
		t.Error("Check must not pin")
	}
	if out, _ := s.Encode(); !bytes.Equal(out, []byte(`{"b@x":"sha256:bb","sample-skill@example.com":"`+testKeyFP+`"}`)) {
		t.Errorf("flat encode %s", out)
	}
	if st := s.CheckAndPin("new", "example.com", "sha256:dd"); st != PinFirstUse || s.Check("new", "example.com", "sha256:DD") != PinPinned {
		t.Error("CheckAndPin first use / case-insensitive")
	}
	if st := s.CheckAndPin("new", "example.com", "sha256:ee"); st != PinChanged || !slices.Equal(s.Pinned("new", "example.com"), []string{"sha256:dd"}) {
		t.Error("a changed key must not replace the pin")
	}
	s.Set("new", "example.com", "sha256:ee")
	s.Remove("b", "x")
	if s.Check("new", "example.com", "sha256:ee") != PinPinned || s.Check("b", "x", "z") != PinFirstUse {
		t.Error("Set/Remove")
	}

	rust := []byte(`[
	  {"tool_id":"calc","domain":"example.com","pinned_keys":[
	    {"fingerprint":"sha256:old","first_seen":"2026-01-15T00:00:00Z","last_seen":"2026-01-30T00:00:00Z","trust_level":"tofu"},
	    {"fingerprint":"sha256:new","first_seen":"2026-02-01T00:00:00Z","last_seen":"2026-02-02T00:00:00Z","trust_level":"verified"}]},
	  {"tool_id":"t@x","domain":"d","pinned_keys":[]}
	]`)
	rs, err := ParsePinStore(rust)
	if err != nil {
		t.Fatal(err)
	}
	if rs.Check("calc", "example.com", "sha256:old") != PinPinned || rs.Check("calc", "example.com", "sha256:new") != PinPinned || rs.Check("calc", "example.com", "sha256:other") != PinChanged {
		t.Error("rust shape: any listed key matches")
	}
	if out, _ := rs.Encode(); string(out) != `{"calc@example.com":"sha256:new"}` {
		t.Errorf("rust shape written flat as %s", out)
	}
	for _, bad := range []string{"", " ", "null", `"x"`, `{"a":1}`, `{"a":""}`, `[{"tool_id":"a","pinned_keys":[{"fingerprint":""}]}]`, `[1]`} {
		if _, err := ParsePinStore([]byte(bad)); !errors.Is(err, errdefs.ErrInvalidArgument) {
			t.Errorf("%q accepted", bad)
		}
	}
	if out, _ := NewPinStore().Encode(); string(out) != "{}" {
		t.Errorf("empty store %s", out)
	}
}
