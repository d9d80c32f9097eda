package cli

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/signerd/signerd/internal/skill"
)

// TestSkillVerifyMatrix runs the vectors/ entries of
// EXPECTED-verify-matrix.json (TestConformanceSkillVerifyMatrix the
// real-world ones).
func TestSkillVerifyMatrix(t *testing.T) {
	runSkillVerifyMatrix(t, "vectors/", 7)
}

// runSkillVerifyMatrix runs the want matrix entries under prefix through
// signctl skill verify --public-key: --digest go must agree with upstream
// Go, --digest sha256 with Python/JS, and the default (any) must accept
// what either accepts, saying which convention matched.
func runSkillVerifyMatrix(t *testing.T, prefix string, want int) {
	data, err := os.ReadFile(skillFixture(t, "vectors", "EXPECTED-verify-matrix.json"))
	if err != nil {
		t.Fatal(err)
	}
	var matrix map[string]map[string]string
	if err := json.Unmarshal(data, &matrix); err != nil {
		t.Fatal(err)
	}
	if len(matrix) < 13 {
		t.Fatalf("the matrix has %d entries; expected the 13 of spec §14", len(matrix))
	}
	// "valid", "valid [w1 w2]" or "INVALID code".
	parse := func(s string) (valid bool, detail []string) {
		if rest, ok := strings.CutPrefix(s, "valid"); ok {
			return true, strings.Fields(strings.Trim(strings.TrimSpace(rest), "[]"))
		}
		return false, strings.Fields(strings.TrimPrefix(s, "INVALID"))
	}
	entries := slices.Sorted(func(yield func(string) bool) {
		for k := range matrix {
			if strings.HasPrefix(k, prefix) && !yield(k) {
				return
			}
		}
	})
	if len(entries) != want {
		t.Fatalf("%d matrix entries under %s, want %d", len(entries), prefix, want)
	}
	for _, entry := range entries {
		exp := matrix[entry]
		t.Run(entry, func(t *testing.T) {
			dir := copySkillFixture(t, filepath.FromSlash(entry))
			pub := skillFixture(t, "vectors", "keys", "pub.pem")
			if strings.HasPrefix(entry, "real-world-signed-skills/") {
				pub = skillFixture(t, "real-world-signed-skills", "thirdkey-0fa46514.recovered_pub.pem")
			}
			domain := skillSigDomain(t, dir)
			goValid, goDetail := parse(exp["go"])
			pyValid, pyDetail := parse(exp["python"])
			if js, _ := parse(exp["javascript"]); js != pyValid {
				t.Fatalf("matrix: javascript and python disagree on %s; this test assumes they agree", entry)
			}
			for _, tc := range []struct {
				digest string
				valid  bool
				detail []string
				conv   string
			}{
				{"go", goValid, goDetail, "go"},
				{"sha256", pyValid, pyDetail, "sha256"},
				{"", goValid || pyValid, nil, ""},
			} {
				args := []string{"skill", "verify", dir, "--domain", domain, "--public-key", pub, "-o", "json"}
				name := "default"
				if tc.digest != "" {
					args = append(args, "--digest", tc.digest)
					name = tc.digest
				}
				t.Run(name, func(t *testing.T) {
					r := runSignctl(t, args...)
					m := r.decode(t)
					if !tc.valid {
						wantSkillExit(t, r, ExitVerifyFail)
						wantSkillField(t, m, "valid", false)
						code := "signature_invalid"
						if len(tc.detail) > 0 {
							code = tc.detail[0]
						}
						wantSkillField(t, m, "error_code", code)
						return
					}
					wantSkillExit(t, r, ExitOK)
					wantSkillField(t, m, "valid", true)
					wantSkillField(t, m, "key_source", "public_key")
					conv := tc.conv
					if conv == "" { // any: whichever SDK family accepts it
						conv = "go"
						if !goValid {
							conv = "sha256"
						}
					}
					wantSkillField(t, m, "digest_convention", conv)
					for _, w := range tc.detail {
						if !slices.Contains(skillWarnings(m), w) {
							t.Errorf("warnings %v lack %s", skillWarnings(m), w)
						}
					}
				})
			}
		})
	}
}

func TestSkillVerifyExpiredIsValidWithWarning(t *testing.T) {
	dir := copySkillFixture(t, "vectors", "sample-skill-go-expired-signed")
	pub := skillFixture(t, "vectors", "keys", "pub.pem")

	r := runSignctl(t, "skill", "verify", dir, "--domain", "example.com", "--public-key", pub, "-o", "json")
	wantSkillExit(t, r, ExitOK)
	m := r.decode(t)
	wantSkillField(t, m, "valid", true)
	wantSkillField(t, m, "expired", true)
	wantSkillField(t, m, "expires_at", "2026-11-22T01:24:22Z")
	if !slices.Contains(skillWarnings(m), skill.WarningSignatureExpired) {
		t.Errorf("warnings = %v, want signature_expired", skillWarnings(m))
	}

	r = runSignctl(t, "skill", "verify", dir, "--domain", "example.com", "--public-key", pub)
	wantSkillExit(t, r, ExitOK)
	if !strings.Contains(r.stdout, "OK: ") || !strings.Contains(r.stdout, "warning:    signature_expired") {
		t.Errorf("text output does not say OK and warn about expiry:\n%s", r.stdout)
	}
}

// TestSkillUnsignedEntries: a symlink added to a signed folder does not
// break its signature (SchemaPin skips symlinks); verify warns and names
// it, tampered and canonicalize list it.
func TestSkillUnsignedEntries(t *testing.T) {
	dir := copySkillFixture(t, "vectors", "sample-skill-go-signed")
	pub := skillFixture(t, "vectors", "keys", "pub.pem")
	if err := os.Symlink("/tmp/evil.py", filepath.Join(dir, "helper.py")); err != nil {
		t.Skip(err)
	}
	r := runSignctl(t, "skill", "verify", dir, "--domain", "example.com", "--public-key", pub, "-o", "json")
	wantSkillExit(t, r, ExitOK)
	m := r.decode(t)
	wantSkillField(t, m, "valid", true)
	if !slices.Contains(skillWarnings(m), skill.WarningUnsignedEntries) || fmt.Sprint(m["unsigned_entries"]) != "[helper.py]" {
		t.Errorf("warnings = %v, unsigned_entries = %v, want unsigned_entries [helper.py]", skillWarnings(m), m["unsigned_entries"])
	}
	r = runSignctl(t, "skill", "verify", dir, "--domain", "example.com", "--public-key", pub)
	wantSkillExit(t, r, ExitOK)
	if !strings.Contains(r.stdout, "warning:    unsigned_entries: 1 entry in the folder is not covered by the signature") || !strings.Contains(r.stdout, "unsigned:   helper.py") {
		t.Errorf("text output does not name the unsigned entry:\n%s", r.stdout)
	}
	for _, cmd := range [][]string{{"skill", "tampered", dir}, {"skill", "canonicalize", dir}} {
		r = runSignctl(t, cmd...)
		wantSkillExit(t, r, ExitOK)
		if !strings.Contains(r.stdout, "  unsigned: helper.py") {
			t.Errorf("%s does not list the unsigned entry:\n%s", strings.Join(cmd[:2], " "), r.stdout)
		}
	}
}

func TestSkillVerifyTampered(t *testing.T) {
	dir := copySkillFixture(t, "vectors", "sample-skill-go-signed-then-tampered")
	pub := skillFixture(t, "vectors", "keys", "pub.pem")
	r := runSignctl(t, "skill", "verify", dir, "--domain", "example.com", "--public-key", pub, "-o", "json")
	wantSkillExit(t, r, ExitVerifyFail)
	m := r.decode(t)
	wantSkillField(t, m, "valid", false)
	wantSkillField(t, m, "error_code", "signature_invalid")
	wantSkillField(t, m, "reason", "PACKAGE_TAMPERED")

	r = runSignctl(t, "skill", "verify", dir, "--domain", "example.com", "--public-key", pub)
	wantSkillExit(t, r, ExitVerifyFail)
	if !strings.Contains(r.stderr, "FAILED: ") || !strings.Contains(r.stderr, "signctl skill tampered "+dir) {
		t.Errorf("text failure does not point at skill tampered:\n%s", r.stderr)
	}
}

func TestSkillVerifyEditedFolderAfterSigning(t *testing.T) {
	// A valid skill becomes invalid when one byte of a covered file changes.
	dir := copySkillFixture(t, "vectors", "sample-skill-python-signed")
	pub := skillFixture(t, "vectors", "keys", "pub.pem")
	wantSkillExit(t, runSignctl(t, "skill", "verify", dir, "--domain", "example.com", "--public-key", pub), ExitOK)
	f := filepath.Join(dir, "scripts", "run.py")
	b, err := os.ReadFile(f)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(f, append(b, ' '), 0o644); err != nil {
		t.Fatal(err)
	}
	wantSkillExit(t, runSignctl(t, "skill", "verify", dir, "--domain", "example.com", "--public-key", pub), ExitVerifyFail)
}

func TestSkillVerifyPinStore(t *testing.T) {
	dir := copySkillFixture(t, "vectors", "sample-skill-python-signed")
	pub := skillFixture(t, "vectors", "keys", "pub.pem")
	pins := filepath.Join(t.TempDir(), "pins.json")
	verify := func(t *testing.T, extra ...string) skillCLIResult {
		return runSignctl(t, append([]string{"skill", "verify", dir, "--domain", "example.com", "--public-key", pub,
			"--pin-store", pins, "-o", "json"}, extra...)...)
	}
	readPins := func(t *testing.T) map[string]string {
		t.Helper()
		b, err := os.ReadFile(pins)
		if err != nil {
			t.Fatal(err)
		}
		var m map[string]string
		if err := json.Unmarshal(b, &m); err != nil {
			t.Fatal(err)
		}
		return m
	}

	t.Run("a failed verification pins nothing", func(t *testing.T) {
		tampered := copySkillFixture(t, "vectors", "sample-skill-go-signed-then-tampered")
		r := runSignctl(t, "skill", "verify", tampered, "--domain", "example.com", "--public-key", pub, "--pin-store", pins)
		wantSkillExit(t, r, ExitVerifyFail)
		if _, err := os.Stat(pins); !errors.Is(err, fs.ErrNotExist) {
			t.Fatalf("the pin store was written after a failed verification (%v)", err)
		}
	})
	t.Run("first use pins", func(t *testing.T) {
		r := verify(t)
		wantSkillExit(t, r, ExitOK)
		m := r.decode(t)
		kp, _ := m["key_pinning"].(map[string]any)
		if kp["status"] != "first_use" {
			t.Errorf("key_pinning = %v, want first_use", m["key_pinning"])
		}
		wantSkillField(t, m, "pin_store_updated", true)
		if got := readPins(t); len(got) != 1 || got["sample-skill@example.com"] != skillTestKeyFP {
			t.Errorf("pins = %v", got)
		}
	})
	t.Run("second use matches and does not rewrite", func(t *testing.T) {
		before, err := os.Stat(pins)
		if err != nil {
			t.Fatal(err)
		}
		r := verify(t)
		wantSkillExit(t, r, ExitOK)
		m := r.decode(t)
		kp, _ := m["key_pinning"].(map[string]any)
		if kp["status"] != "pinned" {
			t.Errorf("key_pinning = %v, want pinned", m["key_pinning"])
		}
		if _, ok := m["pin_store_updated"]; ok {
			t.Error("pin_store_updated set although nothing new was pinned")
		}
		// writeFileAtomic renames a new file into place: same file, not rewritten.
		if after, err := os.Stat(pins); err != nil || !os.SameFile(before, after) {
			t.Errorf("the pin store was rewritten although nothing new was pinned (%v)", err)
		}
	})
	t.Run("another tool id is a first use of its own", func(t *testing.T) {
		r := verify(t, "--tool-id", "renamed")
		wantSkillExit(t, r, ExitOK)
		if got := readPins(t); got["renamed@example.com"] != skillTestKeyFP || got["sample-skill@example.com"] != skillTestKeyFP {
			t.Errorf("pins = %v", got)
		}
	})
	t.Run("a changed key fails", func(t *testing.T) {
		other := "sha256:" + strings.Repeat("ab", 32)
		if err := os.WriteFile(pins, []byte(`{"sample-skill@example.com":"`+other+`"}`), 0o600); err != nil {
			t.Fatal(err)
		}
		r := verify(t)
		wantSkillExit(t, r, ExitVerifyFail)
		m := r.decode(t)
		wantSkillField(t, m, "error_code", "key_pin_mismatch")
		if got := readPins(t); len(got) != 1 || got["sample-skill@example.com"] != other {
			t.Errorf("a failed verification changed the pin store: %v", got)
		}
		r = runSignctl(t, "skill", "verify", dir, "--domain", "example.com", "--public-key", pub, "--pin-store", pins)
		if !strings.Contains(r.stderr, "pinned to another key in "+pins) {
			t.Errorf("text failure does not say what to do:\n%s", r.stderr)
		}
	})
	t.Run("the Rust array shape is read", func(t *testing.T) {
		rust := `[{"tool_id":"sample-skill","domain":"example.com","pinned_keys":[{"fingerprint":"` + skillTestKeyFP + `","trust_level":"tofu"}]}]`
		if err := os.WriteFile(pins, []byte(rust), 0o600); err != nil {
			t.Fatal(err)
		}
		r := verify(t)
		wantSkillExit(t, r, ExitOK)
		kp, _ := r.decode(t)["key_pinning"].(map[string]any)
		if kp["status"] != "pinned" {
			t.Errorf("key_pinning = %v, want pinned", kp)
		}
	})
	t.Run("a malformed store is bad input and is left alone", func(t *testing.T) {
		for _, content := range []string{"", "not json", `"a string"`} {
			if err := os.WriteFile(pins, []byte(content), 0o600); err != nil {
				t.Fatal(err)
			}
			r := verify(t)
			wantSkillExit(t, r, ExitUsage)
			if b, _ := os.ReadFile(pins); string(b) != content {
				t.Errorf("the malformed store was overwritten with %q", b)
			}
		}
	})
}

func TestSkillVerifyDNSTXT(t *testing.T) {
	dir := copySkillFixture(t, "vectors", "sample-skill-go-signed")
	pub := skillFixture(t, "vectors", "keys", "pub.pem")
	record, err := os.ReadFile(skillFixture(t, "vectors", "dns-txt.example.com.txt"))
	if err != nil {
		t.Fatal(err)
	}
	verify := func(t *testing.T, txt string) skillCLIResult {
		return runSignctl(t, "skill", "verify", dir, "--domain", "example.com", "--public-key", pub, "--dns-txt", txt, "-o", "json")
	}
	r := verify(t, strings.TrimSpace(string(record)))
	wantSkillExit(t, r, ExitOK)
	wantSkillField(t, r.decode(t), "dns_txt", strings.TrimSpace(string(record)))

	r = verify(t, "v=schemapin1; fp=sha256:"+strings.Repeat("0", 64))
	wantSkillExit(t, r, ExitVerifyFail)
	wantSkillField(t, r.decode(t), "error_code", "domain_mismatch")

	for _, bad := range []string{"garbage", "v=schemapin2; fp=" + skillTestKeyFP, "v=schemapin1"} {
		wantSkillExit(t, verify(t, bad), ExitUsage)
	}
}

func TestSkillVerifyRevocation(t *testing.T) {
	dir := copySkillFixture(t, "vectors", "sample-skill-go-signed")
	pub := skillFixture(t, "vectors", "keys", "pub.pem")
	verify := func(t *testing.T, extra ...string) skillCLIResult {
		return runSignctl(t, append([]string{"skill", "verify", dir, "--domain", "example.com", "--public-key", pub, "-o", "json"}, extra...)...)
	}

	r := verify(t, "--revocation", skillFixture(t, "vectors", "revocation.example.com.json"))
	wantSkillExit(t, r, ExitVerifyFail)
	m := r.decode(t)
	wantSkillField(t, m, "error_code", "key_revoked")
	wantSkillField(t, m, "reason", "KEY_REVOKED")

	// A revocation document that names other keys changes nothing.
	other := filepath.Join(t.TempDir(), "rev.json")
	doc := skill.NewRevocationDocument("example.com", time.Now())
	if err := doc.Add("sha256:"+strings.Repeat("cd", 32), time.Now(), skill.RevocationSuperseded); err != nil {
		t.Fatal(err)
	}
	b, _ := doc.Encode()
	if err := os.WriteFile(other, b, 0o644); err != nil {
		t.Fatal(err)
	}
	wantSkillExit(t, verify(t, "--revocation", other), ExitOK)

	// Given but unusable: bad input, exit 2, never a pass (fail closed).
	malformed := filepath.Join(t.TempDir(), "malformed.json")
	if err := os.WriteFile(malformed, []byte(`{"revoked_keys":[{"reason":"key_compromise"}]}`), 0o644); err != nil {
		t.Fatal(err)
	}
	for name, path := range map[string]string{
		"missing":   filepath.Join(t.TempDir(), "missing.json"),
		"directory": t.TempDir(),
		"malformed": malformed,
	} {
		t.Run(name, func(t *testing.T) {
			r := verify(t, "--revocation", path)
			wantSkillExit(t, r, ExitUsage)
			// -o json: the error object (report.go), never a result.
			var got map[string]any
			if err := json.Unmarshal([]byte(r.stdout), &got); err != nil || got["code"] != float64(ExitUsage) || got["valid"] != nil {
				t.Errorf("a result, not the error object, was printed for unusable input: %s", r.stdout)
			}
		})
	}

	// The discovery document's own revoked_keys list.
	disc := filepath.Join(t.TempDir(), "disc.json")
	d := skillTestDiscovery(t, func(d *skill.Discovery) { d.RevokedKeys = []string{skillTestKeyFP} })
	if err := os.WriteFile(disc, d, 0o644); err != nil {
		t.Fatal(err)
	}
	r = runSignctl(t, "skill", "verify", dir, "--domain", "example.com", "--discovery", disc, "-o", "json")
	wantSkillExit(t, r, ExitVerifyFail)
	wantSkillField(t, r.decode(t), "error_code", "key_revoked")
}

// skillTestDiscovery is a discovery document for the fixtures' test key.
func skillTestDiscovery(t *testing.T, edit func(*skill.Discovery)) []byte {
	t.Helper()
	pem, err := os.ReadFile(skillFixture(t, "vectors", "keys", "pub.pem"))
	if err != nil {
		t.Fatal(err)
	}
	d := &skill.Discovery{SchemaVersion: "1.2", DeveloperName: "Example Test", PublicKeyPEM: string(pem)}
	if edit != nil {
		edit(d)
	}
	b, err := d.Encode()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestSkillVerifyDiscoveryFile(t *testing.T) {
	dir := copySkillFixture(t, "vectors", "sample-skill-go-signed")
	disc := skillFixture(t, "vectors", "discovery.example.com.json")
	r := runSignctl(t, "skill", "verify", dir, "--domain", "example.com", "--discovery", disc, "-o", "json")
	wantSkillExit(t, r, ExitOK)
	m := r.decode(t)
	wantSkillField(t, m, "developer_name", "Example Corp")
	wantSkillField(t, m, "key_source", "discovery_file")

	// A revocation_endpoint is not fetched offline; the result says so.
	withEndpoint := filepath.Join(t.TempDir(), "disc.json")
	if err := os.WriteFile(withEndpoint, skillTestDiscovery(t, func(d *skill.Discovery) {
		d.RevocationEndpoint = "https://example.com/.well-known/schemapin-revocations.json"
	}), 0o644); err != nil {
		t.Fatal(err)
	}
	r = runSignctl(t, "skill", "verify", dir, "--domain", "example.com", "--discovery", withEndpoint, "-o", "json")
	wantSkillExit(t, r, ExitOK)
	if !slices.Contains(skillWarnings(r.decode(t)), warnRevocationEndpointNotChecked) {
		t.Errorf("no %s warning: %s", warnRevocationEndpointNotChecked, r.stdout)
	}
	r = runSignctl(t, "skill", "verify", dir, "--domain", "example.com", "--discovery", withEndpoint,
		"--revocation", skillFixture(t, "vectors", "revocation.example.com.json"), "-o", "json")
	wantSkillExit(t, r, ExitVerifyFail)

	// A discovery document without a key: upstream's discovery_invalid.
	nokey := filepath.Join(t.TempDir(), "nokey.json")
	if err := os.WriteFile(nokey, []byte(`{"schema_version":"1.2"}`), 0o644); err != nil {
		t.Fatal(err)
	}
	r = runSignctl(t, "skill", "verify", dir, "--domain", "example.com", "--discovery", nokey, "-o", "json")
	wantSkillExit(t, r, ExitVerifyFail)
	wantSkillField(t, r.decode(t), "error_code", "discovery_invalid")
}

func TestSkillVerifyBadInput(t *testing.T) {
	dir := copySkillFixture(t, "vectors", "sample-skill-go-signed")
	pub := skillFixture(t, "vectors", "keys", "pub.pem")
	garbage := filepath.Join(t.TempDir(), "garbage")
	if err := os.WriteFile(garbage, []byte("not a key\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(dir, "SKILL.md")
	for name, args := range map[string][]string{
		"no DIR":                  {"skill", "verify", "--domain", "example.com", "--public-key", pub},
		"no --domain":             {"skill", "verify", dir, "--public-key", pub},
		"URL as --domain":         {"skill", "verify", dir, "--domain", "https://example.com", "--public-key", pub},
		"host:port as --domain":   {"skill", "verify", dir, "--domain", "example.com:443", "--public-key", pub},
		"DIR is a file":           {"skill", "verify", file, "--domain", "example.com", "--public-key", pub},
		"DIR missing":             {"skill", "verify", filepath.Join(dir, "nope"), "--domain", "example.com", "--public-key", pub},
		"two key sources":         {"skill", "verify", dir, "--domain", "example.com", "--public-key", pub, "--discovery", pub},
		"--dns and --dns-txt":     {"skill", "verify", dir, "--domain", "example.com", "--public-key", pub, "--dns", "--dns-txt", "v=schemapin1; fp=" + skillTestKeyFP},
		"bad --digest":            {"skill", "verify", dir, "--domain", "example.com", "--public-key", pub, "--digest", "sha512"},
		"unparseable public key":  {"skill", "verify", dir, "--domain", "example.com", "--public-key", garbage},
		"missing public key":      {"skill", "verify", dir, "--domain", "example.com", "--public-key", garbage + ".missing"},
		"malformed discovery":     {"skill", "verify", dir, "--domain", "example.com", "--discovery", garbage},
		"missing --signature":     {"skill", "verify", dir, "--domain", "example.com", "--public-key", pub, "--signature", garbage + ".missing"},
		"unknown flag":            {"skill", "verify", dir, "--domain", "example.com", "--public-key", pub, "--frobnicate"},
		"pin store is a dir":      {"skill", "verify", dir, "--domain", "example.com", "--public-key", pub, "--pin-store", t.TempDir()},
		"bad -o":                  {"skill", "verify", dir, "--domain", "example.com", "--public-key", pub, "-o", "yaml"},
		"DNS TXT is not a record": {"skill", "verify", dir, "--domain", "example.com", "--public-key", pub, "--dns-txt", ""},
	} {
		t.Run(name, func(t *testing.T) {
			r := runSignctl(t, args...)
			wantSkillExit(t, r, ExitUsage)
			if strings.TrimSpace(r.stderr) == "" {
				t.Error("nothing on stderr says what is wrong")
			}
		})
	}
}

func TestSkillVerifySignatureDocument(t *testing.T) {
	pub := skillFixture(t, "vectors", "keys", "pub.pem")
	t.Run("malformed is exit 2 with a result", func(t *testing.T) {
		dir := copySkillFixture(t, "vectors", "sample-skill-go-signed")
		if err := os.WriteFile(filepath.Join(dir, ".schemapin.sig"), []byte("{\"signature\": 42"), 0o644); err != nil {
			t.Fatal(err)
		}
		r := runSignctl(t, "skill", "verify", dir, "--domain", "example.com", "--public-key", pub, "-o", "json")
		wantSkillExit(t, r, ExitUsage)
		m := r.decode(t)
		wantSkillField(t, m, "valid", false)
		wantSkillField(t, m, "error_code", "signature_invalid")
		wantSkillField(t, m, "reason", "MALFORMED_SIGNATURE")
	})
	t.Run("signature value not base64 DER is malformed", func(t *testing.T) {
		dir := copySkillFixture(t, "vectors", "sample-skill-go-signed")
		sig, err := skill.LoadSignature(dir)
		if err != nil {
			t.Fatal(err)
		}
		sig.Signature = "!!!not-base64!!!"
		b, _ := sig.Encode()
		if err := os.WriteFile(filepath.Join(dir, ".schemapin.sig"), b, 0o644); err != nil {
			t.Fatal(err)
		}
		wantSkillExit(t, runSignctl(t, "skill", "verify", dir, "--domain", "example.com", "--public-key", pub), ExitUsage)
	})
	t.Run("missing is a failed verification", func(t *testing.T) {
		dir := copySkillFixture(t, "vectors", "sample-skill-go-signed")
		if err := os.Remove(filepath.Join(dir, ".schemapin.sig")); err != nil {
			t.Fatal(err)
		}
		r := runSignctl(t, "skill", "verify", dir, "--domain", "example.com", "--public-key", pub, "-o", "json")
		wantSkillExit(t, r, ExitVerifyFail)
		m := r.decode(t)
		wantSkillField(t, m, "error_code", "signature_invalid")
		wantSkillField(t, m, "reason", "SIGNATURE_NOT_FOUND")
	})
	t.Run("--signature elsewhere", func(t *testing.T) {
		dir := copySkillFixture(t, "vectors", "sample-skill-go-signed")
		moved := filepath.Join(t.TempDir(), "release.schemapin.sig")
		if err := os.Rename(filepath.Join(dir, ".schemapin.sig"), moved); err != nil {
			t.Fatal(err)
		}
		wantSkillExit(t, runSignctl(t, "skill", "verify", dir, "--domain", "example.com", "--public-key", pub, "--signature", moved), ExitOK)
	})
	t.Run("unsupported canonicalization is a failed verification", func(t *testing.T) {
		dir := copySkillFixture(t, "vectors", "sample-skill-go-signed")
		sig, err := skill.LoadSignature(dir)
		if err != nil {
			t.Fatal(err)
		}
		sig.Canonicalization = "schemapin-v2"
		b, _ := sig.Encode()
		if err := os.WriteFile(filepath.Join(dir, ".schemapin.sig"), b, 0o644); err != nil {
			t.Fatal(err)
		}
		r := runSignctl(t, "skill", "verify", dir, "--domain", "example.com", "--public-key", pub, "-o", "json")
		wantSkillExit(t, r, ExitVerifyFail)
		wantSkillField(t, r.decode(t), "error_code", "canonicalization_unsupported")
	})
	t.Run("wrong key", func(t *testing.T) {
		dir := copySkillFixture(t, "vectors", "sample-skill-go-signed")
		r := runSignctl(t, "skill", "verify", dir, "--domain", "example.com", "--public-key", skillFixture(t, "vectors", "keys", "other_pub.pem"), "-o", "json")
		wantSkillExit(t, r, ExitVerifyFail)
		wantSkillField(t, r.decode(t), "reason", "INVALID_SIGNATURE")
	})
	t.Run("domain claim differs from --domain", func(t *testing.T) {
		dir := copySkillFixture(t, "vectors", "sample-skill-go-signed")
		r := runSignctl(t, "skill", "verify", dir, "--domain", "example.org", "--public-key", pub, "-o", "json")
		wantSkillExit(t, r, ExitVerifyFail)
		wantSkillField(t, r.decode(t), "error_code", "domain_mismatch")
	})
}
