package skill

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/signerd/signerd/internal/errdefs"
)

const testKeyFP = "sha256:45892e73606fae4e54ac9ef9cba48aef747ac4af2f712fd13abb7c721f5a44cd"

func TestKeys(t *testing.T) {
	pub, err := ParsePublicKeyPEM(readFixture(t, "vectors", "keys", "pub.pem"))
	if err != nil {
		t.Fatal(err)
	}
	if fp, _ := Fingerprint(pub); fp != testKeyFP {
		t.Errorf("fingerprint %s", fp)
	}
	crlf := bytes.ReplaceAll(readFixture(t, "vectors", "keys", "pub.pem"), []byte("\n"), []byte("\r\n"))
	if fp, err := FingerprintPEM(crlf); err != nil || fp != testKeyFP {
		t.Errorf("CRLF PEM: %s %v", fp, err)
	}
	if fp, _ := FingerprintPEM(readFixture(t, "real-world-signed-skills", "thirdkey-0fa46514.recovered_pub.pem")); fp != "sha256:0fa46514f2ddce1503878d4594dd12617706de946a716cecd60533428b53f862" {
		t.Errorf("thirdkey fingerprint %s", fp)
	}
	for _, f := range []string{"priv_pkcs8.pem", "priv_sec1.pem"} {
		priv, err := ParsePrivateKeyPEM(readFixture(t, "vectors", "keys", f))
		if err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		if !priv.PublicKey.Equal(pub) {
			t.Errorf("%s is not the test key", f)
		}
	}
	// openssl ecparam -genkey without -noout: EC PARAMETERS first.
	params := "-----BEGIN EC PARAMETERS-----\nBggqhkjOPQMBBw==\n-----END EC PARAMETERS-----\n"
	if _, err := ParsePrivateKeyPEM(append([]byte(params), readFixture(t, "vectors", "keys", "priv_sec1.pem")...)); err != nil {
		t.Errorf("EC PARAMETERS + key: %v", err)
	}
	p384, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if _, err := Fingerprint(&p384.PublicKey); !errors.Is(err, errdefs.ErrInvalidArgument) {
		t.Error("P-384 accepted")
	}
	for _, bad := range []string{"", "junk", params, string(readFixture(t, "vectors", "keys", "priv_pkcs8.pem"))} {
		if _, err := ParsePublicKeyPEM([]byte(bad)); !errors.Is(err, errdefs.ErrInvalidArgument) {
			t.Errorf("public %q accepted", bad)
		}
	}
	if _, err := ParsePrivateKeyPEM(readFixture(t, "vectors", "keys", "pub.pem")); err == nil {
		t.Error("public key accepted as private")
	}
	if !IsSHA256Ref(testKeyFP) || IsSHA256Ref(strings.ToUpper(testKeyFP)) || IsSHA256Ref("sha256:ab") {
		t.Error("IsSHA256Ref")
	}
}

func TestDiscovery(t *testing.T) {
	d, err := ParseDiscovery(readFixture(t, "vectors", "discovery.example.com.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Validate(); err != nil {
		t.Error(err)
	}
	pub, err := d.PublicKey()
	if err != nil {
		t.Fatal(err)
	}
	if fp, _ := Fingerprint(pub); fp != testKeyFP || d.DeveloperName != "Example Corp" || d.SchemaVersion != "1.2" {
		t.Errorf("%+v", d)
	}
	// Upstream demo documents (schema 1.1, revoked_keys lists).
	for _, p := range [][]string{{"upstream-repo", "go", "schemapin.json"}, {"upstream-repo", "python", "examples", "demo_well_known.json"}, {"upstream-repo", "javascript", "demo_well_known.json"}} {
		d, err := ParseDiscovery(readFixture(t, p...))
		if err != nil || d.Validate() != nil {
			t.Errorf("%v: %v", p, err)
		}
	}
	// Build, encode, parse.
	nd, err := NewDiscovery(pub, "Example Corp")
	if err != nil {
		t.Fatal(err)
	}
	nd.Contact, nd.RevokedKeys, nd.RevocationEndpoint = "security@example.com", []string{testKeyFP}, "https://example.com/r.json"
	b, _ := nd.Encode()
	back, err := ParseDiscovery(b)
	if err != nil || back.PublicKeyPEM != d.PublicKeyPEM || !slices.Equal(back.RevokedKeys, nd.RevokedKeys) || back.Contact != nd.Contact || b[len(b)-1] != '\n' {
		t.Errorf("round trip: %s", b)
	}
	for _, bad := range []string{"null", "[]", `{"public_key_pem":1}`} {
		if _, err := ParseDiscovery([]byte(bad)); !errors.Is(err, errdefs.ErrInvalidArgument) {
			t.Errorf("%s accepted", bad)
		}
	}
	if err := (&Discovery{PublicKeyPEM: d.PublicKeyPEM}).Validate(); err == nil {
		t.Error("missing schema_version passes Validate")
	}
	for in, want := range map[string]string{
		"example.com":                   "https://example.com/.well-known/schemapin.json",
		"http://localhost:8080/x?y#z":   "http://localhost:8080/.well-known/schemapin.json",
		"https://example.com/other/doc": "https://example.com/.well-known/schemapin.json",
	} {
		if got, err := WellKnownURL(in); err != nil || got != want {
			t.Errorf("WellKnownURL(%q) = %q, %v", in, got, err)
		}
	}
	if _, err := WellKnownURL(" "); err == nil {
		t.Error("empty domain")
	}
}

func TestRevocation(t *testing.T) {
	doc, err := ParseRevocation(readFixture(t, "vectors", "revocation.example.com.json"))
	if err != nil {
		t.Fatal(err)
	}
	err = CheckRevocation(testKeyFP, nil, doc)
	var re *RevokedError
	if !errors.As(err, &re) || re.Reason != RevocationKeyCompromise || !errors.Is(err, errdefs.ErrKeyRevoked) {
		t.Fatalf("err = %v", err)
	}
	if err.Error() != "key "+testKeyFP+" is revoked: key_compromise" {
		t.Errorf("message %q", err)
	}
	if err := CheckRevocation(testKeyFP, []string{strings.ToUpper(testKeyFP)}, nil); err == nil || err.Error() != "key "+testKeyFP+" is in simple revocation list" {
		t.Errorf("simple list: %v", err)
	}
	if err := CheckRevocation("sha256:00", []string{testKeyFP}, doc); err != nil {
		t.Errorf("other key revoked: %v", err)
	}
	// Unknown reasons parse (Go) and still revoke.
	odd, err := ParseRevocation([]byte(`{"revoked_keys":[{"fingerprint":"` + testKeyFP + `","reason":"lost_laptop"}]}`))
	if err != nil || CheckRevocation(testKeyFP, nil, odd) == nil {
		t.Errorf("unknown reason: %v", err)
	}
	for _, bad := range []string{"", "null", "[]", `{"revoked_keys":{}}`, `{"revoked_keys":[{"reason":"superseded"}]}`, `{"revoked_keys":[{"fingerprint":" "}]}`} {
		if _, err := ParseRevocation([]byte(bad)); !errors.Is(err, errdefs.ErrInvalidArgument) {
			t.Errorf("%q accepted", bad)
		}
	}
	// Build: what we write reads back and matches the fixture's shape.
	nd := NewRevocationDocument("example.com", time.Date(2026, 2, 11, 0, 0, 0, 0, time.UTC))
	if b, _ := nd.Encode(); !bytes.Contains(b, []byte(`"revoked_keys": []`)) {
		t.Errorf("empty list encoded as %s", b)
	}
	if err := nd.Add(testKeyFP, time.Date(2026, 2, 10, 0, 0, 0, 0, time.UTC), RevocationKeyCompromise); err != nil {
		t.Fatal(err)
	}
	if b, _ := nd.Encode(); !bytes.Equal(b, readFixture(t, "vectors", "revocation.example.com.json")) {
		t.Errorf("built document differs from the fixture:\n%s", b)
	}
	if err := nd.Add(testKeyFP, time.Now(), "lost_laptop"); err == nil {
		t.Error("unknown reason written")
	}
	if err := nd.Add("sha256:xyz", time.Now(), RevocationSuperseded); err == nil {
		t.Error("bad fingerprint written")
	}
}

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

func TestVerifyChain(t *testing.T) {
	prev, _ := ParseSignature(readFixture(t, "vectors", "sample-skill-go-signed", SignatureFilename))
	cur, _ := ParseSignature(readFixture(t, "vectors", "sample-skill-go-v14-signed", SignatureFilename))
	if err := VerifyChain(cur, prev); err != nil {
		t.Errorf("v1.4 vector's previous_hash should link to the v1.3 vector: %v", err)
	}
	rust, _ := ParseSignature(readFixture(t, "vectors", "sample-skill-rust-emulated-signed", SignatureFilename))
	err := VerifyChain(cur, rust)
	var ce *ChainError
	if !errors.As(err, &ce) || ce.Kind != ChainMismatch || ce.Expected != rust.SkillHash || ce.Got != cur.PreviousHash || !errors.Is(err, errdefs.ErrFailedPrecondition) {
		t.Errorf("Rust skill_hash must not link (exact string): %v", err)
	}
	if !strings.HasPrefix(err.Error(), "previous_hash mismatch: current.previous_hash = sha256:55f3") {
		t.Errorf("message %q", err)
	}
	err = VerifyChain(prev, prev)
	if !errors.As(err, &ce) || ce.Kind != ChainNoPreviousHash || err.Error() != "current signature has no previous_hash field" {
		t.Errorf("no previous_hash: %v", err)
	}
	if err := VerifyChain(nil, prev); !errors.Is(err, errdefs.ErrInvalidArgument) {
		t.Error("nil")
	}
}

func TestTamperReport(t *testing.T) {
	r, err := CheckTampered(t.Context(), copyFixtureDir(t, "vectors", "sample-skill-go-signed-then-tampered"), nil)
	if err != nil {
		t.Fatal(err)
	}
	want := TamperReport{Modified: []string{"SKILL.md"}, Added: []string{"extra.txt"}, Removed: []string{"scripts/run.py"}}
	if !slices.Equal(r.Modified, want.Modified) || !slices.Equal(r.Added, want.Added) || !slices.Equal(r.Removed, want.Removed) || r.Clean() {
		t.Errorf("%+v", r)
	}
	stale, err := CheckTampered(t.Context(), copyFixtureDir(t, "upstream-repo", "stale-root-skill"), nil)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(stale.Modified, []string{"SKILL.md"}) || len(stale.Added)+len(stale.Removed) != 0 {
		t.Errorf("stale root: %+v", stale)
	}
	clean := DetectTamperedFiles(map[string]string{"a": "1"}, map[string]string{"a": "1"})
	if !clean.Clean() || clean.Added == nil || clean.Modified == nil || clean.Removed == nil {
		t.Errorf("clean report must have empty non-nil lists: %#v", clean)
	}
	if _, err := CheckTampered(t.Context(), t.TempDir(), nil); !errors.Is(err, errdefs.ErrNotFound) {
		t.Errorf("no signature: %v", err)
	}
}
