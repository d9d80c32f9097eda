package softhsmtest

import (
	"encoding/hex"
	"testing"
)

// requireSignOnly reads key version 1 of the key listed as k (a `key list
// -o json` entry or a `key create/import -o json` answer) straight from the
// token with C_GetAttributeValue: the private half signs and nothing else,
// the public half verifies and nothing else.
func requireSignOnly(t *testing.T, d *daemon, k map[string]any) {
	t.Helper()
	id, err := hex.DecodeString(k["versions"].([]any)[0].(map[string]any)["cka_id"].(string))
	if err != nil || len(id) == 0 {
		t.Fatalf("key %v has no CKA_ID", k["name"])
	}
	ka := d.tok.KeyAttributes(t, id)
	pa := d.tok.PublicKeyAttributes(t, id)
	if !ka.Sign || ka.Decrypt || ka.Unwrap || ka.Derive {
		t.Errorf("key %v private half: sign=%t decrypt=%t unwrap=%t derive=%t, want sign only",
			k["name"], ka.Sign, ka.Decrypt, ka.Unwrap, ka.Derive)
	}
	if !pa.Verify || pa.Encrypt || pa.Wrap || pa.Derive {
		t.Errorf("key %v public half: verify=%t encrypt=%t wrap=%t derive=%t, want verify only",
			k["name"], pa.Verify, pa.Encrypt, pa.Wrap, pa.Derive)
	}
}
