package softhsmtest

import (
	"context"
	"crypto/sha256"
	"strings"
	"testing"
	"time"

	"github.com/signerd/signerd/client"
	signerv1 "github.com/signerd/signerd/gen/signer/v1"
)

// cloacinaPackage, cloacinaPubPEM and cloacinaSig are Cloacina's signature
// of a small package by a test key (the synthetic conformance vector).
const (
	cloacinaPackage = "test package binary content"
	cloacinaPubPEM  = "-----BEGIN PUBLIC KEY-----\nMCowBQYDK2VwAyEAIVL40Zt5HSRFMkLhXy6rbLfP+ntqXtMAl5YOBpiB2xI=\n-----END PUBLIC KEY-----\n"
	cloacinaSigB64  = "7vVRfXevOMGoYqNxzmzUxqG96vTsdKo7f5nuVOAvvPVY2D1HtpQlFmHHzxbyuzBSvJ1/04zegWneorAZRg2hCg=="
	cloacinaSig     = `{
  "version": 1,
  "algorithm": "ed25519",
  "package_hash": "59ff55de6857b718c180deb034d529996084be9556ca645e4e1de2129aa7e556",
  "key_fingerprint": "3097e2dee2cb4a34b53840cdb705aed71067c36f68db0e0f559c3f3fa043315f",
  "signature": "` + cloacinaSigB64 + `",
  "signed_at": "2026-01-28T12:00:00+00:00"
}`
)

// TestCloacinaReaderStrictness: every document Cloacina's reader refuses is
// MALFORMED_SIGNATURE offline, online through signctl, and through the
// Verify RPC a loader calls; what Cloacina accepts verifies in all three.
func TestCloacinaReaderStrictness(t *testing.T) {
	d := startDaemon(t)
	dir := t.TempDir()
	pub := writeFile(t, dir, "release.pub.pem", []byte(cloacinaPubPEM))
	pkg := writeFile(t, dir, "libworkflow.so", []byte(cloacinaPackage))
	mustSignctl(t, d, "trust", "add", "--org", "acme", "--public-key", pub)
	digest := sha256.Sum256([]byte(cloacinaPackage))
	c, err := client.DialUnix(d.socket)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()

	other := strings.Repeat("A", 86) + "=="
	sub := func(old, new string) string { return strings.Replace(cloacinaSig, old, new, 1) }
	tests := []struct {
		name string
		doc  string
		ok   bool
	}{
		{"as written", cloacinaSig, true},
		{"trailing newline", cloacinaSig + "\n", true},
		{"unknown field", sub(`"version": 1,`, `"version": 1, "comment": {"by": ["ci"]},`), true},
		{"duplicated signature", sub(`"signed_at"`, `"signature": "`+other+`", "signed_at"`), false},
		{"duplicated package_hash", sub(`"signed_at"`, `"package_hash": "`+strings.Repeat("0", 64)+`", "signed_at"`), false},
		{"field name in another case", sub(`"signed_at"`, `"SIGNATURE": "`+other+`", "signed_at"`), false},
		{"trailing brace", cloacinaSig + "}", false},
		{"trailing bracket", cloacinaSig + "]", false},
		{"CRLF inside base64", sub("SvJ1/04", `SvJ1\r\n/04`), false},
		{"missing signed_at", sub(",\n  \"signed_at\": \"2026-01-28T12:00:00+00:00\"", ""), false},
		{"null signed_at", sub(`"2026-01-28T12:00:00+00:00"`, "null"), false},
		{"invalid UTF-8", sub("+00:00", "+00:00\xff"), false},
		{"array", `[1, "ed25519"]`, false},
		{"version 2", sub(`"version": 1`, `"version": 2`), false},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sig := writeFile(t, dir, "doc"+string(rune('a'+i))+".sig", []byte(tt.doc))
			wantCode, wantReason := 2, "MALFORMED_SIGNATURE"
			if tt.ok {
				wantCode, wantReason = 0, ""
			}
			for _, mode := range [][]string{{"--trust-key", pub}, {"--org", "acme"}} {
				r := signctl(t, d, append([]string{"verify", pkg, "--signature", sig, "-o", "json"}, mode...)...)
				if r.code != wantCode || r.json(t)["reason"] != wantReason {
					t.Fatalf("verify %s: exit %d, want %d %s\n%s%s", mode[0], r.code, wantCode, wantReason, r.stdout, r.stderr)
				}
			}
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			_, err := c.Signer.Verify(ctx, &signerv1.VerifyRequest{Org: "acme", Digest: digest[:], SignatureDocument: []byte(tt.doc)})
			if got := relReason(err); (tt.ok && err != nil) || (!tt.ok && got != wantReason) {
				t.Fatalf("Verify RPC: %v (reason %q), want %q", err, got, wantReason)
			}
		})
	}
}
