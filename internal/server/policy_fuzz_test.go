package server

import (
	"errors"
	"testing"

	signerv1 "github.com/signerd/signerd/gen/signer/v1"
	"github.com/signerd/signerd/internal/errdefs"
)

// FuzzParsePolicy: any input either fails to parse with an error, or
// yields a policy whose every rule has a known role and a selector, and
// whose Authorize answers (allowed, or PERMISSION_DENIED) without panicking.
// Seeds: testdata/fuzz/FuzzParsePolicy and the ones added here.
func FuzzParsePolicy(f *testing.F) {
	f.Add([]byte(examplePolicy))
	f.Add([]byte(`{"version": 1, "rules": [{"uids": [0], "role": "admin"}]}`))
	f.Add([]byte(`{"version": 1, "rules": [{"tcp_loopback": true, "role": "verifier"}, {"everyone_local": true, "role": "verifier"}]}`))
	f.Add([]byte(`{"version": 1, "rules": [{"certs": ["a"], "role": "signer", "keys": ["*"], "domains": ["*", "Example.COM."]}]}`))
	f.Add([]byte(`{"version": 1, "rules": [{"uids": [4294967295], "gids": [0], "role": "signer", "keys": ["k"]}]}`))
	f.Add([]byte(`{"version": 1, "rules": [null]}`))
	f.Add([]byte(`{"version": 1, "rules": [{"role": "admin"}]}`))
	f.Add([]byte(`{"version": 1, "rules": [{"uids": [0], "role": "admin", "x": 1}]}`))
	f.Add([]byte(`{"version": 2}`))
	f.Add([]byte("{\"version\": 1,\n\"rules\": [{\"uids\": [0], \"role\": \"admin\"}]} trailing"))
	f.Add([]byte(``))
	f.Add([]byte(`[`))

	ids := []Identity{
		{ID: "uid:0", Unix: true},
		{ID: "uid:1000", UID: 1000, GID: 1000, Unix: true},
		{ID: "cert:a", Names: []string{"a"}, TLS: true},
		{ID: LoopbackID, Loopback: true},
		{ID: "nobody"},
	}
	reqs := []struct {
		method string
		req    any
	}{
		{signerv1.SignerService_Verify_FullMethodName, &signerv1.VerifyRequest{}},
		{signerv1.SignerService_Sign_FullMethodName, &signerv1.SignRequest{KeyName: "k"}},
		{signerv1.SignerService_Sign_FullMethodName, nil},
		{signerv1.SkillService_SignSkill_FullMethodName, &signerv1.VerifyRequest{}}, // a request of the wrong type
		{signerv1.SkillService_SignSkill_FullMethodName, &signerv1.SignSkillRequest{KeyName: "k", Domain: "example.com"}},
		{signerv1.KeyService_CreateKey_FullMethodName, &signerv1.CreateKeyRequest{}},
		{"/nope/Nope", nil},
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		p, err := ParsePolicy(data)
		if err != nil {
			if p != nil {
				t.Fatal("policy returned with an error")
			}
			if err.Error() == "" {
				t.Fatal("empty error message")
			}
			return
		}
		if p.Len() == 0 {
			t.Fatal("a policy without rules parsed")
		}
		for _, r := range p.rules {
			if r.role < RoleVerifier || r.role > RoleAdmin {
				t.Fatalf("rule %d: role %d", r.index, r.role)
			}
			if len(r.uids)+len(r.gids)+len(r.certs) == 0 && !r.everyoneLocal && !r.tcpLoopback {
				t.Fatalf("rule %d has no selector", r.index)
			}
			if r.role != RoleSigner && (len(r.keys) > 0 || len(r.domains) > 0) {
				t.Fatalf("rule %d: keys or domains on role %s", r.index, r.role)
			}
			if r.role == RoleSigner && len(r.keys) == 0 {
				t.Fatalf("rule %d: signer without keys", r.index)
			}
		}
		for _, id := range ids {
			for _, q := range reqs {
				err := p.Authorize(t.Context(), id, q.method, q.req)
				if err != nil && !errors.Is(err, errdefs.ErrPermissionDenied) {
					t.Fatalf("Authorize(%s, %s): %v is not a denial", id.ID, q.method, err)
				}
				if _, known := methodRoles[q.method]; !known && err == nil {
					t.Fatalf("unknown method %s allowed", q.method)
				}
				if id.ID == "nobody" && err == nil {
					t.Fatalf("an identity of no kind was allowed %s", q.method)
				}
			}
		}
	})
}
