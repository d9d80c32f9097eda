package skill

import (
	"errors"
	"slices"
	"testing"

	"github.com/signerd/signerd/internal/errdefs"
)

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
