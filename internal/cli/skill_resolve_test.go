package cli

import (
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/signerd/signerd/internal/skill"
	"github.com/signerd/signerd/internal/skill/resolve"
	"github.com/signerd/signerd/internal/skill/resolve/resolvetest"
)

// wellKnownSite serves example.test's trust documents from a loopback
// HTTPS server and answers DNS for it from a loopback DNS server; signctl
// reaches both through skillFetcherOptions.
type wellKnownSite struct {
	mu    sync.Mutex
	pages map[string]http.HandlerFunc
	hits  []string
	dns   *resolvetest.DNSServer
}

func (s *wellKnownSite) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	s.hits = append(s.hits, r.URL.Path)
	h := s.pages[r.URL.Path]
	s.mu.Unlock()
	if h == nil {
		http.NotFound(w, r)
		return
	}
	h(w, r)
}

func (s *wellKnownSite) serve(path string, body []byte, status int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if body == nil {
		delete(s.pages, path)
		return
	}
	s.pages[path] = func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		_, _ = w.Write(body)
	}
}

func (s *wellKnownSite) requests() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.hits)
}

func newWellKnownSite(t *testing.T) *wellKnownSite {
	t.Helper()
	s := &wellKnownSite{pages: map[string]http.HandlerFunc{}}
	srv := resolvetest.NewServer(t, s, "example.test")
	s.dns = resolvetest.NewDNSServer(t)
	prev := skillFetcherOptions
	skillFetcherOptions = []resolve.Option{
		resolve.WithRootCAs(srv.Roots),
		resolve.WithHostAddr("example.test", srv.Addr()),
		resolve.WithResolver(s.dns.Resolver()),
		resolve.WithTimeout(5 * time.Second),
	}
	t.Cleanup(func() { skillFetcherOptions = prev })
	return s
}

// exampleTestSkill is the Python-signed sample skill with its domain claim
// changed to example.test: the claim is not signed (spec §0.3), so the
// signature still verifies.
func exampleTestSkill(t *testing.T) string {
	t.Helper()
	dir := copySkillFixture(t, "vectors", "sample-skill-python-signed")
	sig, err := skill.LoadSignature(dir)
	if err != nil {
		t.Fatal(err)
	}
	sig.Domain = "example.test"
	b, err := sig.Encode()
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, ".schemapin.sig"), b, 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

// TestSkillVerifyWellKnown resolves the key as SchemaPin clients do, from
// https://example.test/.well-known/schemapin.json served on loopback.
// Not parallel: it sets skillFetcherOptions.
func TestSkillVerifyWellKnown(t *testing.T) {
	const revPath = "/.well-known/schemapin-revocations.json"
	revoking, err := os.ReadFile(skillFixture(t, "vectors", "revocation.example.com.json"))
	if err != nil {
		t.Fatal(err)
	}
	verify := func(t *testing.T, dir string, extra ...string) skillCLIResult {
		return runSignctl(t, append([]string{"skill", "verify", dir, "--domain", "example.test", "-o", "json", "--allow-private-endpoints"}, extra...)...)
	}

	t.Run("valid", func(t *testing.T) {
		s := newWellKnownSite(t)
		s.serve(skill.WellKnownPath, skillTestDiscovery(t, nil), http.StatusOK)
		pins := filepath.Join(t.TempDir(), "pins.json")
		r := verify(t, exampleTestSkill(t), "--pin-store", pins)
		wantSkillExit(t, r, ExitOK)
		m := r.decode(t)
		wantSkillField(t, m, "valid", true)
		wantSkillField(t, m, "key_source", "well_known")
		wantSkillField(t, m, "discovery_url", "https://example.test/.well-known/schemapin.json")
		wantSkillField(t, m, "developer_name", "Example Test")
		wantSkillField(t, m, "pin_store_updated", true)
	})
	t.Run("revoked by the revocation endpoint", func(t *testing.T) {
		s := newWellKnownSite(t)
		s.serve(skill.WellKnownPath, skillTestDiscovery(t, func(d *skill.Discovery) { d.RevocationEndpoint = revPath }), http.StatusOK)
		s.serve(revPath, revoking, http.StatusOK)
		r := verify(t, exampleTestSkill(t))
		wantSkillExit(t, r, ExitVerifyFail)
		m := r.decode(t)
		wantSkillField(t, m, "error_code", "key_revoked")
		if srcs, _ := m["revocation_sources"].([]any); len(srcs) != 1 || srcs[0] != "https://example.test"+revPath {
			t.Errorf("revocation_sources = %v", m["revocation_sources"])
		}
	})
	t.Run("revocation endpoint plus a local revocation file", func(t *testing.T) {
		s := newWellKnownSite(t)
		s.serve(skill.WellKnownPath, skillTestDiscovery(t, func(d *skill.Discovery) { d.RevocationEndpoint = revPath }), http.StatusOK)
		// The endpoint revokes nothing relevant; the local file revokes the key.
		empty := skill.NewRevocationDocument("example.test", time.Now())
		b, _ := empty.Encode()
		s.serve(revPath, b, http.StatusOK)
		r := verify(t, exampleTestSkill(t), "--revocation", skillFixture(t, "vectors", "revocation.example.com.json"))
		wantSkillExit(t, r, ExitVerifyFail)
		wantSkillField(t, r.decode(t), "error_code", "key_revoked")
	})
	t.Run("unreachable revocation document fails closed", func(t *testing.T) {
		s := newWellKnownSite(t)
		s.serve(skill.WellKnownPath, skillTestDiscovery(t, func(d *skill.Discovery) { d.RevocationEndpoint = revPath }), http.StatusOK)
		s.serve(revPath, []byte("oops"), http.StatusInternalServerError)
		r := verify(t, exampleTestSkill(t))
		wantSkillExit(t, r, ExitVerifyFail)
		m := r.decode(t)
		wantSkillField(t, m, "error_code", "discovery_fetch_failed")
		if msg, _ := m["error_message"].(string); !strings.Contains(msg, "fail-closed") {
			t.Errorf("error_message = %q", msg)
		}
	})
	t.Run("http revocation endpoint fails closed", func(t *testing.T) {
		s := newWellKnownSite(t)
		s.serve(skill.WellKnownPath, skillTestDiscovery(t, func(d *skill.Discovery) {
			d.RevocationEndpoint = "http://example.test" + revPath
		}), http.StatusOK)
		r := verify(t, exampleTestSkill(t))
		wantSkillExit(t, r, ExitVerifyFail)
		wantSkillField(t, r.decode(t), "error_code", "discovery_fetch_failed")
	})
	t.Run("revocation endpoint on another host fails closed", func(t *testing.T) {
		s := newWellKnownSite(t)
		s.serve(skill.WellKnownPath, skillTestDiscovery(t, func(d *skill.Discovery) {
			d.RevocationEndpoint = "https://127.0.0.1:9/revoked.json"
		}), http.StatusOK)
		r := verify(t, exampleTestSkill(t))
		wantSkillExit(t, r, ExitVerifyFail)
		m := r.decode(t)
		wantSkillField(t, m, "error_code", "discovery_fetch_failed")
		if msg, _ := m["error_message"].(string); !strings.Contains(msg, "discovery document's host example.test") {
			t.Errorf("error_message = %q", msg)
		}
		if n := s.requests(); n != 1 {
			t.Errorf("%d requests, want the discovery document's only", n)
		}
	})
	t.Run("loopback refused without --allow-private-endpoints", func(t *testing.T) {
		s := newWellKnownSite(t)
		s.serve(skill.WellKnownPath, skillTestDiscovery(t, nil), http.StatusOK)
		r := runSignctl(t, "skill", "verify", exampleTestSkill(t), "--domain", "example.test", "-o", "json")
		wantSkillExit(t, r, ExitVerifyFail)
		m := r.decode(t)
		wantSkillField(t, m, "error_code", "discovery_fetch_failed")
		if msg, _ := m["error_message"].(string); !strings.Contains(msg, "127.0.0.1 is a loopback address") || !strings.Contains(msg, "--allow-private-endpoints") {
			t.Errorf("error_message = %q", msg)
		}
		if n := s.requests(); n != 0 {
			t.Errorf("%d requests reached the loopback server", n)
		}
	})
	t.Run("no discovery document", func(t *testing.T) {
		newWellKnownSite(t) // serves 404
		r := verify(t, exampleTestSkill(t))
		wantSkillExit(t, r, ExitVerifyFail)
		m := r.decode(t)
		wantSkillField(t, m, "error_code", "discovery_fetch_failed")
		wantSkillField(t, m, "reason", "UNTRUSTED_SIGNER")
		r = runSignctl(t, "skill", "verify", exampleTestSkill(t), "--domain", "example.test", "--allow-private-endpoints")
		wantSkillExit(t, r, ExitVerifyFail)
		if !strings.Contains(r.stderr, "Could not resolve discovery for domain: example.test") || !strings.Contains(r.stderr, "404") {
			t.Errorf("text failure:\n%s", r.stderr)
		}
	})
	t.Run("malformed signature never reaches the network", func(t *testing.T) {
		s := newWellKnownSite(t)
		s.serve(skill.WellKnownPath, skillTestDiscovery(t, nil), http.StatusOK)
		dir := exampleTestSkill(t)
		if err := os.WriteFile(filepath.Join(dir, ".schemapin.sig"), []byte("[]"), 0o644); err != nil {
			t.Fatal(err)
		}
		wantSkillExit(t, verify(t, dir), ExitUsage)
		if n := s.requests(); n != 0 {
			t.Errorf("%d requests were made for a malformed signature", n)
		}
	})
	t.Run("DNS", func(t *testing.T) {
		s := newWellKnownSite(t)
		s.serve(skill.WellKnownPath, skillTestDiscovery(t, nil), http.StatusOK)
		dir := exampleTestSkill(t)
		const name = "_schemapin.example.test"

		// Absent: no effect, but said.
		r := verify(t, dir, "--dns")
		wantSkillExit(t, r, ExitOK)
		wantSkillField(t, r.decode(t), "dns_txt", "absent")

		match := "v=schemapin1; kid=k; fp=" + skillTestKeyFP
		s.dns.SetTXT(name, "v=spf1 -all", match)
		r = verify(t, dir, "--dns")
		wantSkillExit(t, r, ExitOK)
		wantSkillField(t, r.decode(t), "dns_txt", match)

		s.dns.SetTXT(name, "v=schemapin1; fp=sha256:"+strings.Repeat("0", 64))
		r = verify(t, dir, "--dns")
		wantSkillExit(t, r, ExitVerifyFail)
		wantSkillField(t, r.decode(t), "error_code", "domain_mismatch")

		s.dns.SetTXT(name, "v=schemapin1; no-fp-here")
		r = verify(t, dir, "--dns")
		wantSkillExit(t, r, ExitVerifyFail)
		wantSkillField(t, r.decode(t), "error_code", "discovery_invalid")

		s.dns.SetServFail(name)
		r = verify(t, dir, "--dns")
		wantSkillExit(t, r, ExitVerifyFail)
		wantSkillField(t, r.decode(t), "error_code", "discovery_fetch_failed")

		// --dns with a key from disk still looks the record up.
		r = runSignctl(t, "skill", "verify", dir, "--domain", "example.test", "--dns", "--allow-private-endpoints",
			"--public-key", skillFixture(t, "vectors", "keys", "pub.pem"), "-o", "json")
		wantSkillExit(t, r, ExitVerifyFail)
		wantSkillField(t, r.decode(t), "error_code", "discovery_fetch_failed")
	})
}
