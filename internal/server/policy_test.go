package server

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	signerv1 "github.com/signerd/signerd/gen/signer/v1"
	"github.com/signerd/signerd/internal/errdefs"
)

// examplePolicy is the README's example.
const examplePolicy = `{
  "version": 1,
  "rules": [
    {"comment": "operators", "uids": [0], "role": "admin"},
    {"uids": [1000], "gids": [2000], "certs": ["build-farm.example.com"],
     "role": "signer", "keys": ["release", "skills"], "domains": ["example.com"]},
    {"certs": ["ci-any-key"], "role": "signer", "keys": ["*"]},
    {"certs": ["skills-bot"], "role": "signer", "keys": ["skills"], "domains": ["*"]},
    {"everyone_local": true, "role": "verifier"},
    {"certs": ["loader.example.com"], "role": "verifier"}
  ]
}`

func TestParsePolicyErrors(t *testing.T) {
	tests := []struct {
		name, file, want string
	}{
		{"empty", ``, "empty"},
		{"not JSON", `{"version": 1, rules: []}`, "line 1, column 16"},
		{"truncated", "{\"version\": 1,\n \"rules\": [", "unexpected end"},
		{"array", `[]`, "must be a JSON object with version and rules, not a JSON array"},
		{"rule not an object", `{"version": 1, "rules": [5]}`, "rules[0]: a rule must be a JSON object, not a JSON number"},
		{"no version", `{"rules": [{"uids": [0], "role": "admin"}]}`, `"version" is required`},
		{"version 2", `{"version": 2, "rules": [{"uids": [0], "role": "admin"}]}`, "version 2 is not supported"},
		{"no rules", `{"version": 1}`, `"rules" is empty`},
		{"empty rules", `{"version": 1, "rules": []}`, `"rules" is empty`},
		{"unknown top-level field", `{"version": 1, "rules": [{"uids": [0], "role": "admin"}], "default": "allow"}`, `unknown field "default"`},
		{"unknown rule field", "{\"version\": 1, \"rules\": [\n{\"uid\": [0], \"role\": \"admin\"}]}", `unknown field "uid"`},
		{"trailing data", `{"version": 1, "rules": [{"uids": [0], "role": "admin"}]} {}`, "unexpected data after"},
		{"negative uid", `{"version": 1, "rules": [{"uids": [-1], "role": "admin"}]}`, "cannot use a JSON number -1 as uint32"},
		{"uid as string", `{"version": 1, "rules": [{"uids": ["root"], "role": "admin"}]}`, "cannot use a JSON string"},
		{"no role", `{"version": 1, "rules": [{"uids": [0]}]}`, `rules[0]: "role" is required`},
		{"unknown role", `{"version": 1, "rules": [{"uids": [0], "role": "admin"}, {"uids": [1], "role": "root"}]}`, `rules[1]: role "root" is unknown`},
		{"no selector", `{"version": 1, "rules": [{"role": "verifier"}]}`, "rules[0]: no selector"},
		{"empty selectors", `{"version": 1, "rules": [{"uids": [], "certs": [], "everyone_local": false, "role": "verifier"}]}`, "rules[0]: no selector"},
		{"keys on admin", `{"version": 1, "rules": [{"uids": [0], "role": "admin", "keys": ["k"]}]}`, "rules[0]: keys and domains apply to role signer only"},
		{"domains on verifier", `{"version": 1, "rules": [{"uids": [0], "role": "verifier", "domains": ["example.com"]}]}`, "rules[0]: keys and domains apply to role signer only"},
		{"signer without keys", `{"version": 1, "rules": [{"uids": [1000], "role": "signer"}]}`, `rules[0]: a signer rule needs "keys"`},
		{"bad key name", `{"version": 1, "rules": [{"uids": [1000], "role": "signer", "keys": ["../etc"]}]}`, `rules[0]: keys: "../etc" is not a key name`},
		{"bad domain", `{"version": 1, "rules": [{"uids": [1000], "role": "signer", "keys": ["k"], "domains": ["https://example.com"]}]}`, `rules[0]: domains: "https://example.com" is not a host name`},
		{"wildcard domain part", `{"version": 1, "rules": [{"uids": [1000], "role": "signer", "keys": ["k"], "domains": ["*.example.com"]}]}`, "is not a host name"},
		{"empty cert name", `{"version": 1, "rules": [{"certs": [""], "role": "verifier"}]}`, "rules[0]: certs"},
		{"wildcard cert", `{"version": 1, "rules": [{"certs": ["*.example.com"], "role": "verifier"}]}`, "wildcards are not supported"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := ParsePolicy([]byte(tt.file))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("ParsePolicy: %v; want an error containing %q", err, tt.want)
			}
			if p != nil {
				t.Fatal("a policy was returned with an error")
			}
		})
	}
}

func TestLoadPolicy(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "policy.json")
	os.WriteFile(good, []byte(examplePolicy), 0o644)
	p, err := LoadPolicy(good)
	if err != nil {
		t.Fatal(err)
	}
	if p.Len() != 6 {
		t.Fatalf("rules: %d", p.Len())
	}
	bad := filepath.Join(dir, "bad.json")
	os.WriteFile(bad, []byte(`{"version": 1, "rules": [{"uids": [0], "role": "superuser"}]}`), 0o644)
	if _, err := LoadPolicy(bad); err == nil || !strings.Contains(err.Error(), bad) || !strings.Contains(err.Error(), "rules[0]") {
		t.Fatalf("bad policy: %v; want the path and the rule", err)
	}
	if _, err := LoadPolicy(filepath.Join(dir, "missing.json")); err == nil || !strings.Contains(err.Error(), "missing.json") {
		t.Fatalf("missing policy: %v", err)
	}
	huge := filepath.Join(dir, "huge.json")
	os.WriteFile(huge, []byte(strings.Repeat(" ", MaxPolicySize+1)), 0o644)
	if _, err := LoadPolicy(huge); err == nil || !strings.Contains(err.Error(), "larger than") {
		t.Fatalf("huge policy: %v", err)
	}
}

func TestPolicyAuthorize(t *testing.T) {
	p, err := ParsePolicy([]byte(examplePolicy))
	if err != nil {
		t.Fatal(err)
	}
	var (
		root     = Identity{ID: "uid:0", UID: 0, GID: 0, Unix: true}
		dev      = Identity{ID: "uid:1000", UID: 1000, GID: 1000, Unix: true}
		group    = Identity{ID: "uid:1500", UID: 1500, GID: 2000, Unix: true}
		other    = Identity{ID: "uid:65534", UID: 65534, GID: 65534, Unix: true}
		farm     = Identity{ID: "cert:build-farm.example.com", Names: []string{"build-farm.example.com", "farm"}, TLS: true}
		farmCN   = Identity{ID: "cert:x", Names: []string{"x", "build-farm.example.com"}, TLS: true}
		anyKey   = Identity{ID: "cert:ci-any-key", Names: []string{"ci-any-key"}, TLS: true}
		skillBot = Identity{ID: "cert:skills-bot", Names: []string{"skills-bot"}, TLS: true}
		loader   = Identity{ID: "cert:loader.example.com", Names: []string{"loader.example.com"}, TLS: true}
		stranger = Identity{ID: "cert:stranger", Names: []string{"stranger"}, TLS: true}
		// A TLS identity has UID 0 as a zero value: it must not match uids.
		zeroUID  = Identity{ID: "cert:z", Names: []string{"z"}, TLS: true}
		loopback = Identity{ID: LoopbackID, Loopback: true}
	)
	const (
		sign      = signerv1.SignerService_Sign_FullMethodName
		signSkill = signerv1.SkillService_SignSkill_FullMethodName
		verify    = signerv1.SignerService_Verify_FullMethodName
		create    = signerv1.KeyService_CreateKey_FullMethodName
		setPolicy = signerv1.TrustService_SetPolicy_FullMethodName
	)
	signWith := func(k string) any { return &signerv1.SignRequest{KeyName: k} }
	skillWith := func(k, d string) any { return &signerv1.SignSkillRequest{KeyName: k, Domain: d} }
	tests := []struct {
		name   string
		id     Identity
		method string
		req    any
		allow  bool
	}{
		{"admin creates keys", root, create, &signerv1.CreateKeyRequest{}, true},
		{"admin signs with any key", root, sign, signWith("anything"), true},
		{"admin signs skills for any domain", root, signSkill, skillWith("k", "other.org"), true},
		{"signer by uid, allowed key", dev, sign, signWith("release"), true},
		{"signer by uid, other key", dev, sign, signWith("other"), false},
		{"signer by uid may verify (everyone_local)", dev, verify, &signerv1.VerifyRequest{}, true},
		{"signer may not administer", dev, create, &signerv1.CreateKeyRequest{}, false},
		{"signer may not set policy", dev, setPolicy, &signerv1.SetPolicyRequest{}, false},
		{"signer by gid", group, sign, signWith("skills"), true},
		{"signer skill, allowed key and domain", dev, signSkill, skillWith("skills", "example.com"), true},
		{"signer skill, domain case and final dot", dev, signSkill, skillWith("skills", "Example.COM."), true},
		{"signer skill, other domain", dev, signSkill, skillWith("skills", "evil.example"), false},
		{"signer skill, subdomain is another domain", dev, signSkill, skillWith("skills", "sub.example.com"), false},
		{"signer skill, other key", dev, signSkill, skillWith("other", "example.com"), false},
		{"signer by cert SAN", farm, sign, signWith("release"), true},
		{"signer by cert, any listed name", farmCN, sign, signWith("release"), true},
		{"signer by cert, other key", farm, sign, signWith("other"), false},
		{"signer by cert may also verify (roles are cumulative)", farm, verify, &signerv1.VerifyRequest{}, true},
		{"keys *", anyKey, sign, signWith("whatever"), true},
		{"keys * without domains: no skills", anyKey, signSkill, skillWith("whatever", "example.com"), false},
		{"domains *", skillBot, signSkill, skillWith("skills", "any.org"), true},
		{"domains * keeps the key limit", skillBot, signSkill, skillWith("release", "any.org"), false},
		{"verifier by cert verifies", loader, verify, &signerv1.VerifyRequest{}, true},
		{"verifier by cert may not sign", loader, sign, signWith("release"), false},
		{"everyone_local verifies", other, verify, &signerv1.VerifyRequest{}, true},
		{"everyone_local may not sign", other, sign, signWith("release"), false},
		{"unknown cert: nothing", stranger, verify, &signerv1.VerifyRequest{}, false},
		{"TLS peer does not match uid 0", zeroUID, create, &signerv1.CreateKeyRequest{}, false},
		{"loopback not named: nothing", loopback, verify, &signerv1.VerifyRequest{}, false},
		{"unknown method", root, "/signer.v1.KeyService/DestroyEverything", nil, false},
		{"signing request of an unknown type fails closed", dev, sign, &signerv1.VerifyRequest{}, false},
		{"stream call is authorized by role", dev, sign, nil, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := p.Authorize(t.Context(), tt.id, tt.method, tt.req)
			if tt.allow {
				if err != nil {
					t.Fatalf("denied: %v", err)
				}
				return
			}
			if !errors.Is(err, errdefs.ErrPermissionDenied) || errdefs.ReasonOf(err) != errdefs.ReasonPermissionDenied {
				t.Fatalf("Authorize: %v; want PERMISSION_DENIED", err)
			}
			if !strings.Contains(err.Error(), tt.id.ID) {
				t.Errorf("denial %q does not name the caller", err)
			}
		})
	}
}

func TestPolicyLoopbackAndDenialMessages(t *testing.T) {
	p, err := ParsePolicy([]byte(`{"version": 1, "rules": [
		{"tcp_loopback": true, "role": "verifier"},
		{"uids": [1000], "role": "signer", "keys": ["a"], "domains": ["d.example"]}]}`))
	if err != nil {
		t.Fatal(err)
	}
	lo := Identity{ID: LoopbackID, Loopback: true}
	if err := p.Authorize(t.Context(), lo, signerv1.SignerService_Verify_FullMethodName, &signerv1.VerifyRequest{}); err != nil {
		t.Fatalf("tcp_loopback verifier: %v", err)
	}
	err = p.Authorize(t.Context(), Identity{ID: "uid:1000", UID: 1000, Unix: true}, signerv1.SignerService_Sign_FullMethodName, &signerv1.SignRequest{KeyName: "b"})
	for _, want := range []string{"uid:1000", `with key "b"`, "rules[1]", "signer for keys [a]"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("denial %v does not say %q", err, want)
		}
	}
	err = p.Authorize(t.Context(), Identity{ID: "uid:7", UID: 7, Unix: true}, signerv1.SignerService_Verify_FullMethodName, nil)
	if err == nil || !strings.Contains(err.Error(), "no policy rule matches") {
		t.Errorf("unmatched caller: %v", err)
	}
}

func TestDefaultAuthorizerTCP(t *testing.T) {
	a := DefaultAuthorizer{AdminUID: 1234}
	for _, tt := range []struct {
		id   Identity
		want Role
	}{
		{Identity{ID: "uid:0", Unix: true}, RoleAdmin},
		{Identity{ID: "uid:1234", UID: 1234, Unix: true}, RoleAdmin},
		{Identity{ID: "uid:5", UID: 5, Unix: true}, RoleVerifier},
		{Identity{ID: "cert:x", Names: []string{"x"}, TLS: true}, RoleVerifier},
		{Identity{ID: LoopbackID, Loopback: true}, RoleVerifier},
		{Identity{ID: "?"}, RoleNone},
	} {
		if got := a.RoleOf(tt.id); got != tt.want {
			t.Errorf("RoleOf(%s) = %s, want %s", tt.id.ID, got, tt.want)
		}
	}
}

// TestREADMEPolicyExample: the policy file the README shows is valid.
func TestREADMEPolicyExample(t *testing.T) {
	readme, err := os.ReadFile(filepath.Join("..", "..", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	_, rest, ok := strings.Cut(string(readme), "```json\n{\n  \"version\": 1,\n  \"rules\"")
	if !ok {
		t.Fatal("README has no policy file example")
	}
	body, _, _ := strings.Cut(rest, "```")
	if _, err := ParsePolicy([]byte("{\n  \"version\": 1,\n  \"rules\"" + body)); err != nil {
		t.Fatalf("README's policy example: %v", err)
	}
}
