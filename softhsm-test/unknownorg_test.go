package softhsmtest

import (
	"context"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	signerv1 "github.com/signerd/signerd/gen/signer/v1"
)

// TestUnknownOrgRefused: an org nobody configured is refused — NOT_FOUND,
// UNKNOWN_ORG — by Verify, VerifySkill and ListTrusted, and signctl verify
// exits 1 with that reason, for a signed, an unsigned and a tampered
// package alike; a misspelt org never admits unsigned code. Setting a
// policy for it is enough to make it known.
func TestUnknownOrgRefused(t *testing.T) {
	d := startDaemon(t)
	mustSignctl(t, d, "key", "create", "release", "--algorithm", "ed25519")
	mustSignctl(t, d, "trust", "add", "--org", "acme", "--key", "release")
	dir := t.TempDir()
	signed := writeFile(t, dir, "signed.so", []byte("signed"))
	mustSignctl(t, d, "sign", signed, "--key", "release")
	unsigned := writeFile(t, dir, "unsigned.so", []byte("unsigned"))

	for _, file := range []string{signed, unsigned} {
		r := signctl(t, d, "verify", file, "--org", "acmee", "-o", "json")
		expectExit(t, r, 1, "verify for a misspelt org")
		if m := r.json(t); m["reason"] != "UNKNOWN_ORG" || m["verified"] != false || m["admitted"] != false {
			t.Fatalf("verify %s for a misspelt org: %v", file, m)
		}
	}
	// The same files for the configured org: verified, and admitted.
	mustSignctl(t, d, "verify", signed, "--org", "acme")
	if m := signctl(t, d, "verify", unsigned, "--org", "acme", "-o", "json").json(t); m["admitted"] != true {
		t.Fatalf("unsigned for acme: %v", m)
	}

	c := relDial(t, d)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	wantUnknown := func(what string, err error) {
		t.Helper()
		if status.Code(err) != codes.NotFound || relReason(err) != "UNKNOWN_ORG" {
			t.Fatalf("%s: %v (reason %q), want NOT_FOUND, UNKNOWN_ORG", what, err, relReason(err))
		}
	}
	_, err := c.Signer.Verify(ctx, &signerv1.VerifyRequest{Org: "nobody-configured", Digest: relDigest()})
	wantUnknown("Verify", err)
	_, err = c.Signer.ListTrusted(ctx, &signerv1.ListTrustedRequest{Org: "nobody-configured"})
	wantUnknown("ListTrusted", err)
	_, err = c.Skills.VerifySkill(ctx, &signerv1.VerifySkillRequest{Domain: "nobody.example", Root: relDigest(), SignatureDocument: []byte("{}")})
	wantUnknown("VerifySkill", err)

	// A policy makes the org known: the unsigned file is then admitted.
	mustSignctl(t, d, "policy", "set", "--org", "acmee", "--require-signatures=false")
	if m := signctl(t, d, "verify", unsigned, "--org", "acmee", "-o", "json").json(t); m["reason"] != "SIGNATURE_NOT_FOUND" || m["admitted"] != true {
		t.Fatalf("unsigned for an org with a policy: %v", m)
	}
	if _, err := c.Signer.ListTrusted(ctx, &signerv1.ListTrustedRequest{Org: "acmee"}); err != nil {
		t.Fatalf("ListTrusted of an org with a policy: %v", err)
	}
}
