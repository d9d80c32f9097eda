package softhsmtest

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"

	signerv1 "github.com/signerd/signerd/gen/signer/v1"
)

// TestLogLinesBounded: whatever a caller puts in a string field — org,
// key name, artifact name, domain, signer_kid, a document's fields, a
// manifest path — no line of signerd's log (debug level) is longer than
// 4 KiB: caller strings are clipped wherever errors and logs quote them.
// Each field gets a string just under the small per-method request limit
// (so it reaches the service) and one just under the global limit.
func TestLogLinesBounded(t *testing.T) {
	d := startDaemon(t)
	mustSignctl(t, d, "key", "create", "release", "--algorithm", "ed25519")
	mustSignctl(t, d, "key", "create", "skills", "--algorithm", "ecdsa-p256", "--org", "example.com")
	mustSignctl(t, d, "trust", "add", "--org", "acme", "--key", "release")
	c := relDial(t, d)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	for _, n := range []int{60 << 10, 1<<20 - 4<<10} {
		big := strings.Repeat("\x1b[31m=", n/6)
		doc := func(fields map[string]any) []byte {
			b, _ := json.Marshal(fields)
			return b
		}
		calls := map[string]func() error{
			"Sign key": func() error {
				_, err := c.Signer.Sign(ctx, &signerv1.SignRequest{KeyName: big, Digest: relDigest()})
				return err
			},
			"Sign artifact": func() error {
				_, err := c.Signer.Sign(ctx, &signerv1.SignRequest{KeyName: "release", Digest: relDigest(), ArtifactName: big})
				return err
			},
			"Verify org": func() error {
				_, err := c.Signer.Verify(ctx, &signerv1.VerifyRequest{Org: big, Digest: relDigest()})
				return err
			},
			"Verify document": func() error {
				_, err := c.Signer.Verify(ctx, &signerv1.VerifyRequest{Org: "acme", Digest: relDigest(), SignatureDocument: doc(map[string]any{
					"version": 1, "algorithm": big, "package_hash": big, "key_fingerprint": big, "signature": big})})
				return err
			},
			"ListTrusted org": func() error {
				_, err := c.Signer.ListTrusted(ctx, &signerv1.ListTrustedRequest{Org: big})
				return err
			},
			"VerifySkill": func() error {
				_, err := c.Skills.VerifySkill(ctx, &signerv1.VerifySkillRequest{Domain: "example.com", Root: relDigest(), SignatureDocument: doc(map[string]any{
					"skill_hash": "sha256:" + strings.Repeat("a", 64), "signature": "AAAA", "signed_at": big, "domain": big, "signer_kid": big, "schemapin_version": "1.4"})})
				return err
			},
			"VerifySkill domain": func() error {
				_, err := c.Skills.VerifySkill(ctx, &signerv1.VerifySkillRequest{Domain: big, Root: relDigest(), SignatureDocument: []byte("{}")})
				return err
			},
			"SignSkill": func() error {
				_, err := c.Skills.SignSkill(ctx, &signerv1.SignSkillRequest{KeyName: "skills", Root: relDigest(), Domain: big, SkillName: big,
					SignerKid: big, PreviousHash: big, SchemaVersion: big, ExpiresIn: durationpb.New(time.Hour), FileManifest: map[string]string{big: "sha256:" + strings.Repeat("a", 64)}})
				return err
			},
			"CreateKey": func() error {
				_, err := c.Keys.CreateKey(ctx, &signerv1.CreateKeyRequest{Name: big, Org: big, Algorithm: signerv1.Algorithm_ALGORITHM_ED25519})
				return err
			},
			"AddTrust": func() error {
				_, err := c.Trust.AddTrust(ctx, &signerv1.AddTrustRequest{Org: big, Key: &signerv1.AddTrustRequest_PublicKeyPem{PublicKeyPem: big}, DisplayName: big})
				return err
			},
		}
		for name, call := range calls {
			if err := call(); err == nil {
				t.Errorf("%s with %d-byte strings succeeded", name, n)
			}
		}
	}
	logs := d.logs.String()
	var longest int
	for _, l := range strings.Split(logs, "\n") {
		longest = max(longest, len(l))
		if len(l) > 4<<10 {
			t.Fatalf("a log line of %d bytes: %.300s…", len(l), l)
		}
	}
	if strings.Contains(logs, "\x1b") {
		t.Fatal("a caller's escape sequence reached the log raw")
	}
	t.Logf("longest of %d log lines: %d bytes", strings.Count(logs, "\n"), longest)
}

// TestRefusalLinesBounded: a caller refused in a loop does not write a
// line a call. Per caller and status code, the daemon writes the first 10
// lines of each 10-second window, says on the tenth that more are
// counted, and on the next window's first how many it held back; before,
// 20,000 refusals a second wrote 5 MB a second and spent journald's rate
// limit for every other line.
func TestRefusalLinesBounded(t *testing.T) {
	d := startDaemon(t)
	c := relDial(t, d)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	const calls = 1000
	start := time.Now()
	for range calls {
		if _, err := c.Signer.Verify(ctx, &signerv1.VerifyRequest{Org: "nobody-configured-this", Digest: relDigest()}); status.Code(err) != codes.NotFound {
			t.Fatalf("Verify of an unknown org: %v, want NOT_FOUND", err)
		}
	}
	// Not a timing assertion: a slow machine spans more windows, and each
	// window allows its 10 lines.
	windows := int(time.Since(start)/(10*time.Second)) + 2
	logs := d.logs.String()
	lines := strings.Count(logs, `msg="call refused"`)
	if lines == 0 || lines > 10*windows {
		t.Fatalf("%d refused calls wrote %d lines, want 1 to %d (10 a window, %d windows)", calls, lines, 10*windows, windows)
	}
	if !strings.Contains(logs, "are counted, not written") {
		t.Fatal("no line says that further refusals are counted")
	}
	t.Logf("%d refused calls, %d lines", calls, lines)
}
