package server

import (
	"strings"
	"testing"
)

// TestParsePolicyFieldNamesExact: a field name is read only as spelled in
// the format, once. encoding/json alone matches names case-insensitively
// and lets the last of repeated names win, so a rule that a reviewer (or
// jq, Python, a linter) reads as "role": "verifier" could be in force as
// an admin rule, and a signer's "keys" could be widened by a "Keys" after
// it.
func TestParsePolicyFieldNamesExact(t *testing.T) {
	tests := []struct{ name, file, want string }{
		{"repeated role", `{"version": 1, "rules": [{"uids": [1000], "role": "verifier", "role": "admin"}]}`, `rules[0]: field "role" is given twice`},
		{"role in another case", `{"version": 1, "rules": [{"uids": [1000], "role": "verifier", "Role": "admin"}]}`, `rules[0]: field "Role" is not a policy field (did you mean "role"?)`},
		{"upper-case rule", `{"version": 1, "rules": [{"UIDS": [1000], "ROLE": "admin"}]}`, `rules[0]: field "UIDS" is not a policy field (did you mean "uids"?)`},
		{"keys widened", `{"version": 1, "rules": [{"uids": [1000], "role": "signer", "keys": ["release"], "kEys": ["*"]}]}`, `field "kEys" is not a policy field`},
		{"repeated rules", `{"version": 1, "rules": [{"uids": [0], "role": "admin"}], "rules": [{"uids": [1000], "role": "verifier"}]}`, `field "rules" is given twice`},
		{"Version", `{"Version": 1, "rules": [{"uids": [0], "role": "admin"}]}`, `field "Version" is not a policy field`},
		{"repeated version", `{"version": 2, "version": 1, "rules": [{"uids": [0], "role": "admin"}]}`, `field "version" is given twice`},
		{"escaped repeat", `{"version": 1, "rules": [{"uids": [1000], "role": "verifier", "r\u006fle": "admin"}]}`, `rules[0]: field "role" is given twice`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := ParsePolicy([]byte(tt.file))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("ParsePolicy: %v (policy returned: %v); want an error containing %q", err, p != nil, tt.want)
			}
			if p != nil {
				t.Fatal("a policy was returned with an error")
			}
		})
	}
	// What the format allows still parses.
	if _, err := ParsePolicy([]byte(examplePolicy)); err != nil {
		t.Fatalf("README example: %v", err)
	}
}
