package skill

import (
	"bytes"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/signerd/signerd/internal/errdefs"
)

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
