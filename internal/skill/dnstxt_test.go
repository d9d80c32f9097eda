package skill

import (
	"errors"
	"strings"
	"testing"

	"github.com/signerd/signerd/internal/errdefs"
)

func TestDNSTXT(t *testing.T) {
	value := strings.TrimSpace(string(readFixture(t, "vectors", "dns-txt.example.com.txt")))
	r, err := ParseDNSTXT(value)
	if err != nil {
		t.Fatal(err)
	}
	if r.KeyID != "example-2026-01" || r.Fingerprint != testKeyFP || !r.Matches(strings.ToUpper(testKeyFP)) || r.Matches("sha256:00") {
		t.Errorf("%+v", r)
	}
	if r.String() != value {
		t.Errorf("String %q, want %q", r.String(), value)
	}
	if b, err := NewDNSTXT("example-2026-01", testKeyFP); err != nil || b != r {
		t.Errorf("NewDNSTXT %+v %v", b, err)
	}
	ok := map[string]DNSTXT{
		" V=schemapin1 ;; FP = SHA256:ABC ; extra=1; kid=a=b ": {Version: "schemapin1", Fingerprint: "sha256:abc", KeyID: "a=b"},
		"fp=sha256:1; v=schemapin1; fp=sha256:2":               {Version: "schemapin1", Fingerprint: "sha256:2"},
	}
	for in, want := range ok {
		if got, err := ParseDNSTXT(in); err != nil || got != want {
			t.Errorf("%q: %+v %v", in, got, err)
		}
	}
	bad := map[string]string{
		"":                                  "missing required 'v'",
		"v=schemapin1; kid":                 "missing '='",
		"v=schemapin2; fp=sha256:a":         "unsupported version: schemapin2",
		"v=schemapin1; kid=k":               "missing required 'fp'",
		"v=schemapin1; fp=md5:a":            "must be sha256",
		"fp=sha256:a":                       "missing required 'v'",
		"v=schemapin1; fp=sha256:a; broken": "missing '='",
	}
	for in, msg := range bad {
		if _, err := ParseDNSTXT(in); err == nil || !strings.Contains(err.Error(), msg) || !errors.Is(err, errdefs.ErrInvalidArgument) {
			t.Errorf("%q: err = %v, want %q", in, err, msg)
		}
	}
	if _, err := NewDNSTXT("a;b", testKeyFP); err == nil {
		t.Error("kid with ';'")
	}
	if _, err := NewDNSTXT("", "sha256:abc"); err == nil {
		t.Error("short fingerprint")
	}
	if DNSTXTName("example.com.") != "_schemapin.example.com" || DNSTXTName("example.com") != "_schemapin.example.com" {
		t.Error("DNSTXTName")
	}
	if v, ok := SelectDNSTXT([]string{"google-site-verification=x", value, "v=schemapin1; fp=sha256:zz"}); !ok || v != value {
		t.Errorf("SelectDNSTXT %q", v)
	}
	if _, ok := SelectDNSTXT([]string{"spf"}); ok {
		t.Error("SelectDNSTXT found nothing yet ok")
	}
}
