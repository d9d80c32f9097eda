package resolve_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"errors"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/signerd/signerd/internal/errdefs"
	"github.com/signerd/signerd/internal/skill"
	"github.com/signerd/signerd/internal/skill/resolve"
	"github.com/signerd/signerd/internal/skill/resolve/resolvetest"
)

// site is a set of documents served over HTTPS for example.test and
// other.test from one loopback server, with a log of what was asked.
type site struct {
	mu    sync.Mutex
	pages map[string]http.HandlerFunc // "host/path" → handler
	hits  []string
}

func (s *site) handle(hostPath string, h http.HandlerFunc) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.pages[hostPath] = h
}

func (s *site) json(hostPath, body string) {
	s.handle(hostPath, func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(body))
	})
}

func (s *site) requested() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.hits...)
}

func (s *site) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	key := strings.ToLower(r.Host) + r.URL.Path
	s.mu.Lock()
	s.hits = append(s.hits, key)
	h := s.pages[key]
	s.mu.Unlock()
	if h == nil {
		http.NotFound(w, r)
		return
	}
	h(w, r)
}

// newSite starts the server and returns a Fetcher that reaches it for
// example.test and other.test, plus extra options.
func newSite(t *testing.T, opts ...resolve.Option) (*site, *resolvetest.Server, *resolve.Fetcher) {
	t.Helper()
	s := &site{pages: map[string]http.HandlerFunc{}}
	srv := resolvetest.NewServer(t, s, "example.test", "other.test")
	base := []resolve.Option{
		resolve.WithRootCAs(srv.Roots),
		resolve.WithHostAddr("example.test", srv.Addr()),
		resolve.WithHostAddr("other.test", srv.Addr()),
		resolve.WithTimeout(5 * time.Second),
		resolve.AllowPrivateAddresses(), // the server is on loopback
	}
	return s, srv, resolve.New(append(base, opts...)...)
}

// discoveryJSON returns a valid discovery document for a fresh key, its
// fingerprint, and the document with extra fields applied.
func discoveryJSON(t *testing.T, edit func(*skill.Discovery)) (string, string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	d, err := skill.NewDiscovery(&key.PublicKey, "Example Test")
	if err != nil {
		t.Fatal(err)
	}
	if edit != nil {
		edit(d)
	}
	b, err := d.Encode()
	if err != nil {
		t.Fatal(err)
	}
	fp, err := skill.Fingerprint(&key.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	return string(b), fp
}

func revocationJSON(t *testing.T, fp string) string {
	t.Helper()
	doc := skill.NewRevocationDocument("example.test", time.Now())
	if err := doc.Add(fp, time.Now(), skill.RevocationKeyCompromise); err != nil {
		t.Fatal(err)
	}
	b, err := doc.Encode()
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

const wellKnown = "example.test/.well-known/schemapin.json"

func asFetchError(t *testing.T, err error, doc string) *resolve.FetchError {
	t.Helper()
	var fe *resolve.FetchError
	if !errors.As(err, &fe) {
		t.Fatalf("error %v (%T) is not a *FetchError", err, err)
	}
	if fe.Document != doc {
		t.Fatalf("FetchError.Document = %q, want %q (%v)", fe.Document, doc, err)
	}
	return fe
}

func TestDiscoverySuccess(t *testing.T) {
	s, _, f := newSite(t)
	body, fp := discoveryJSON(t, nil)
	s.json(wellKnown, body)

	d, u, err := f.Discovery(context.Background(), "example.test")
	if err != nil {
		t.Fatal(err)
	}
	if u != "https://example.test/.well-known/schemapin.json" {
		t.Errorf("URL = %q", u)
	}
	pub, err := d.PublicKey()
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := skill.Fingerprint(pub); got != fp {
		t.Errorf("fingerprint = %s, want %s", got, fp)
	}
	if d.DeveloperName != "Example Test" {
		t.Errorf("developer_name = %q", d.DeveloperName)
	}
	// The Host header (and SNI, or the handshake would have failed) is the
	// domain, not the loopback address it was dialled at.
	if got := s.requested(); len(got) != 1 || got[0] != wellKnown {
		t.Errorf("requests = %v, want [%s]", got, wellKnown)
	}
}

func TestResolveWithoutRevocationEndpoint(t *testing.T) {
	s, _, f := newSite(t)
	body, _ := discoveryJSON(t, nil)
	s.json(wellKnown, body)
	res, err := f.Resolve(context.Background(), "example.test")
	if err != nil {
		t.Fatal(err)
	}
	if res.Revocation != nil || res.RevocationJSON != nil || res.RevocationURL != "" {
		t.Errorf("revocation without an endpoint: %+v", res)
	}
}

func TestResolveFetchesRevocation(t *testing.T) {
	for _, tc := range []struct{ name, endpoint, served, wantURL string }{
		{"absolute", "https://example.test/revoked.json", "example.test/revoked.json", "https://example.test/revoked.json"},
		{"absolute, host spelt otherwise", "https://EXAMPLE.test.:443/revoked.json", "example.test.:443/revoked.json", "https://EXAMPLE.test.:443/revoked.json"},
		{"relative to the discovery URL", "/.well-known/schemapin-revocations.json",
			"example.test/.well-known/schemapin-revocations.json", "https://example.test/.well-known/schemapin-revocations.json"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, _, f := newSite(t)
			body, fp := discoveryJSON(t, func(d *skill.Discovery) { d.RevocationEndpoint = tc.endpoint })
			s.json(wellKnown, body)
			s.json(tc.served, revocationJSON(t, fp))

			res, err := f.Resolve(context.Background(), "example.test")
			if err != nil {
				t.Fatal(err)
			}
			if res.RevocationURL != tc.wantURL {
				t.Errorf("RevocationURL = %q, want %q", res.RevocationURL, tc.wantURL)
			}
			if res.Revocation == nil || len(res.Revocation.RevokedKeys) != 1 || res.Revocation.RevokedKeys[0].Fingerprint != fp {
				t.Fatalf("revocation = %+v", res.Revocation)
			}
			if _, err := skill.ParseRevocation(res.RevocationJSON); err != nil {
				t.Errorf("RevocationJSON does not parse: %v", err)
			}
			// The fetched document revokes the key: the verdict a caller
			// reaches with it.
			if err := skill.CheckRevocation(fp, nil, res.Revocation); err == nil {
				t.Error("the fetched revocation document does not revoke the key")
			}
		})
	}
}

func TestRedirects(t *testing.T) {
	redirect := func(to string) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) { http.Redirect(w, r, to, http.StatusFound) }
	}
	t.Run("same host is followed", func(t *testing.T) {
		s, _, f := newSite(t)
		body, _ := discoveryJSON(t, nil)
		s.handle(wellKnown, redirect("/v2/schemapin.json"))
		s.json("example.test/v2/schemapin.json", body)
		if _, _, err := f.Discovery(context.Background(), "example.test"); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("another host is refused", func(t *testing.T) {
		s, _, f := newSite(t)
		body, _ := discoveryJSON(t, nil)
		s.handle(wellKnown, redirect("https://other.test/.well-known/schemapin.json"))
		s.json("other.test/.well-known/schemapin.json", body) // reachable and valid: only policy refuses it
		_, _, err := f.Discovery(context.Background(), "example.test")
		asFetchError(t, err, resolve.DocDiscovery)
		if !errors.Is(err, resolve.ErrRedirectRefused) {
			t.Fatalf("err = %v, want ErrRedirectRefused", err)
		}
		for _, r := range s.requested() {
			if strings.HasPrefix(r, "other.test") {
				t.Errorf("the other host was asked: %v", s.requested())
			}
		}
	})
	t.Run("same host on another port is refused", func(t *testing.T) {
		s, _, f := newSite(t)
		s.handle(wellKnown, redirect("https://example.test:8443/.well-known/schemapin.json"))
		if _, _, err := f.Discovery(context.Background(), "example.test"); !errors.Is(err, resolve.ErrRedirectRefused) {
			t.Fatalf("err = %v, want ErrRedirectRefused", err)
		}
	})
	t.Run("http is refused", func(t *testing.T) {
		s, _, f := newSite(t)
		s.handle(wellKnown, redirect("http://example.test/.well-known/schemapin.json"))
		_, _, err := f.Discovery(context.Background(), "example.test")
		if !errors.Is(err, resolve.ErrRedirectRefused) || !errors.Is(err, resolve.ErrInsecureURL) {
			t.Fatalf("err = %v, want ErrRedirectRefused and ErrInsecureURL", err)
		}
	})
	t.Run("a loop stops", func(t *testing.T) {
		s, _, f := newSite(t)
		s.handle(wellKnown, redirect("/.well-known/schemapin.json"))
		if _, _, err := f.Discovery(context.Background(), "example.test"); !errors.Is(err, resolve.ErrRedirectRefused) {
			t.Fatalf("err = %v, want ErrRedirectRefused", err)
		}
	})
}

func TestOversizedBody(t *testing.T) {
	big := `{"schema_version":"1.2","padding":"` + strings.Repeat("x", 4096) + `"}`
	t.Run("announced", func(t *testing.T) {
		s, _, f := newSite(t, resolve.WithMaxBodySize(1024))
		s.handle(wellKnown, func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Content-Length", strconv.Itoa(len(big)))
			_, _ = w.Write([]byte(big))
		})
		_, _, err := f.Discovery(context.Background(), "example.test")
		if !errors.Is(err, resolve.ErrBodyTooLarge) || !strings.Contains(err.Error(), "announced") {
			t.Fatalf("err = %v, want ErrBodyTooLarge before reading the body", err)
		}
	})
	t.Run("streamed", func(t *testing.T) {
		s, _, f := newSite(t, resolve.WithMaxBodySize(1024))
		s.handle(wellKnown, func(w http.ResponseWriter, _ *http.Request) {
			// Chunked, no Content-Length: the limit must hold while reading.
			for i := 0; i < 64; i++ {
				_, _ = w.Write([]byte(strings.Repeat(" ", 128)))
				w.(http.Flusher).Flush()
			}
		})
		_, _, err := f.Discovery(context.Background(), "example.test")
		if !errors.Is(err, resolve.ErrBodyTooLarge) {
			t.Fatalf("err = %v, want ErrBodyTooLarge", err)
		}
	})
	t.Run("at the limit is fine", func(t *testing.T) {
		body, _ := discoveryJSON(t, nil)
		s, _, f := newSite(t, resolve.WithMaxBodySize(int64(len(body))))
		s.json(wellKnown, body)
		if _, _, err := f.Discovery(context.Background(), "example.test"); err != nil {
			t.Fatal(err)
		}
	})
}

func TestTimeout(t *testing.T) {
	release := make(chan struct{})
	s, _, f := newSite(t, resolve.WithTimeout(200*time.Millisecond))
	t.Cleanup(func() { close(release) }) // runs before the server's Close
	s.handle(wellKnown, func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-release:
		}
		// Never answer: returning normally would send an empty 200, which
		// can race the client's deadline.
		panic(http.ErrAbortHandler)
	})
	// The outcome is asserted (a deadline, naming the 200ms limit), not
	// the elapsed time, which is only logged. The server never answers:
	// without the timeout the fetch would end only at the caller's own
	// generous 60s deadline, whose error does not name 200ms.
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	start := time.Now()
	_, _, err := f.Discovery(ctx, "example.test")
	t.Logf("the fetch gave up after %v with a 200ms timeout", time.Since(start))
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v, want a deadline", err)
	}
	asFetchError(t, err, resolve.DocDiscovery)
	if !strings.Contains(err.Error(), "200ms") {
		t.Errorf("the message does not say which limit was hit: %v", err)
	}
}

func TestHTTPStatus(t *testing.T) {
	_, _, f := newSite(t) // nothing served: 404
	_, _, err := f.Discovery(context.Background(), "example.test")
	fe := asFetchError(t, err, resolve.DocDiscovery)
	if !errors.Is(err, resolve.ErrHTTPStatus) || fe.StatusCode != http.StatusNotFound {
		t.Fatalf("err = %v (status %d), want ErrHTTPStatus 404", err, fe.StatusCode)
	}
}

func TestInvalidDiscoveryDocument(t *testing.T) {
	for name, body := range map[string]string{
		"not JSON":          "<html>hello</html>",
		"no schema_version": `{"public_key_pem":"-----BEGIN PUBLIC KEY-----\n-----END PUBLIC KEY-----\n"}`,
		"no key":            `{"schema_version":"1.2"}`,
	} {
		t.Run(name, func(t *testing.T) {
			s, _, f := newSite(t)
			s.json(wellKnown, body)
			_, _, err := f.Discovery(context.Background(), "example.test")
			asFetchError(t, err, resolve.DocDiscovery)
			if !errors.Is(err, errdefs.ErrInvalidArgument) {
				t.Fatalf("err = %v, want ErrInvalidArgument", err)
			}
		})
	}
}

func TestRevocationFailsClosed(t *testing.T) {
	// A port nothing listens on: connection refused, quickly.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	deadAddr := l.Addr().String()
	l.Close()

	for _, tc := range []struct {
		name     string
		endpoint string
		serve    func(s *site)
		want     error
	}{
		{name: "on another host", endpoint: "https://down.test/revoked.json", want: resolve.ErrEndpointRefused},
		{name: "404", endpoint: "https://example.test/missing.json", want: resolve.ErrHTTPStatus},
		{name: "500", endpoint: "https://example.test/revoked.json", serve: func(s *site) {
			s.handle("example.test/revoked.json", func(w http.ResponseWriter, _ *http.Request) {
				http.Error(w, "boom", http.StatusInternalServerError)
			})
		}, want: resolve.ErrHTTPStatus},
		{name: "malformed", endpoint: "https://example.test/revoked.json", serve: func(s *site) {
			s.json("example.test/revoked.json", `{"revoked_keys":[{"reason":"key_compromise"}]}`)
		}, want: errdefs.ErrInvalidArgument},
		{name: "http endpoint", endpoint: "http://example.test/revoked.json", want: resolve.ErrInsecureURL},
		{name: "other scheme", endpoint: "ftp://example.test/revoked.json", want: resolve.ErrInsecureURL},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, _, f := newSite(t, resolve.WithHostAddr("down.test", deadAddr))
			body, _ := discoveryJSON(t, func(d *skill.Discovery) { d.RevocationEndpoint = tc.endpoint })
			s.json(wellKnown, body)
			if tc.serve != nil {
				tc.serve(s)
			}
			res, err := f.Resolve(context.Background(), "example.test")
			if err == nil {
				t.Fatalf("Resolve succeeded (%+v): a named revocation document that cannot be had must fail", res)
			}
			asFetchError(t, err, resolve.DocRevocation)
			if tc.want != nil && !errors.Is(err, tc.want) {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
			if strings.HasPrefix(tc.endpoint, "http://") {
				for _, r := range s.requested() {
					if strings.HasSuffix(r, "/revoked.json") {
						t.Errorf("the http endpoint was requested: %v", s.requested())
					}
				}
			}
		})
	}
}

func TestDiscoveryURLMustBeHTTPS(t *testing.T) {
	s, _, f := newSite(t)
	body, _ := discoveryJSON(t, nil)
	s.json(wellKnown, body)
	_, _, err := f.Discovery(context.Background(), "http://example.test")
	if !errors.Is(err, resolve.ErrInsecureURL) {
		t.Fatalf("err = %v, want ErrInsecureURL", err)
	}
	if len(s.requested()) != 0 {
		t.Errorf("requests were made: %v", s.requested())
	}
}

func TestServerCertificateIsVerified(t *testing.T) {
	s, srv, _ := newSite(t)
	body, _ := discoveryJSON(t, nil)
	s.json(wellKnown, body)
	t.Run("unknown CA", func(t *testing.T) {
		// Same server, but the system roots: the test CA is unknown.
		f := resolve.New(resolve.WithHostAddr("example.test", srv.Addr()), resolve.AllowPrivateAddresses())
		_, _, err := f.Discovery(context.Background(), "example.test")
		var cv *tls.CertificateVerificationError
		if !errors.As(err, &cv) {
			t.Fatalf("err = %v, want a certificate verification error", err)
		}
	})
	t.Run("name not in the certificate", func(t *testing.T) {
		f := resolve.New(resolve.WithRootCAs(srv.Roots), resolve.WithHostAddr("evil.test", srv.Addr()), resolve.AllowPrivateAddresses())
		_, _, err := f.Discovery(context.Background(), "evil.test")
		var cv *tls.CertificateVerificationError
		if !errors.As(err, &cv) {
			t.Fatalf("err = %v, want a certificate verification error", err)
		}
	})
}

func TestCallerCancellation(t *testing.T) {
	_, _, f := newSite(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, _, err := f.Discovery(ctx, "example.test")
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
}

func TestLookupTXT(t *testing.T) {
	const fp = "sha256:45892e73606fae4e54ac9ef9cba48aef747ac4af2f712fd13abb7c721f5a44cd"
	record := "v=schemapin1; kid=k1; fp=" + fp
	dns := resolvetest.NewDNSServer(t)
	dns.SetTXT("_schemapin.example.test", "google-site-verification=abc", record)
	dns.SetTXT("_schemapin.long.test", "v=schemapin1; note="+strings.Repeat("n", 300)+"; fp="+fp)
	dns.SetTXT("_schemapin.other.test", "v=spf1 -all")
	dns.SetTXT("_schemapin.nodata.test")
	dns.SetServFail("_schemapin.broken.test")
	f := resolve.New(resolve.WithResolver(dns.Resolver()), resolve.WithTimeout(5*time.Second))
	ctx := context.Background()

	t.Run("found", func(t *testing.T) {
		v, ok, err := f.LookupTXT(ctx, "example.test")
		if err != nil || !ok || v != record {
			t.Fatalf("LookupTXT = %q, %v, %v; want %q", v, ok, err, record)
		}
		txt, err := skill.ParseDNSTXT(v)
		if err != nil || !txt.Matches(fp) {
			t.Fatalf("record %q does not match %s: %v", v, fp, err)
		}
	})
	t.Run("trailing dot", func(t *testing.T) {
		if v, ok, err := f.LookupTXT(ctx, "example.test."); err != nil || !ok || v != record {
			t.Fatalf("LookupTXT = %q, %v, %v", v, ok, err)
		}
	})
	t.Run("chunks of one record are joined", func(t *testing.T) {
		v, ok, err := f.LookupTXT(ctx, "long.test")
		if err != nil || !ok || len(v) < 300 || !strings.HasSuffix(v, fp) {
			t.Fatalf("LookupTXT = %q, %v, %v", v, ok, err)
		}
	})
	t.Run("mismatch", func(t *testing.T) {
		v, ok, err := f.LookupTXT(ctx, "example.test")
		if err != nil || !ok {
			t.Fatal(ok, err)
		}
		txt, err := skill.ParseDNSTXT(v)
		if err != nil {
			t.Fatal(err)
		}
		if txt.Matches("sha256:" + strings.Repeat("0", 64)) {
			t.Fatal("the record matches a different key")
		}
	})
	for _, domain := range []string{"absent.test", "nodata.test", "other.test"} {
		t.Run("absent "+domain, func(t *testing.T) {
			v, ok, err := f.LookupTXT(ctx, domain)
			if err != nil || ok || v != "" {
				t.Fatalf("LookupTXT = %q, %v, %v; want absent", v, ok, err)
			}
		})
	}
	t.Run("server failure is an error", func(t *testing.T) {
		_, ok, err := f.LookupTXT(ctx, "broken.test")
		if err == nil || ok {
			t.Fatalf("LookupTXT = %v, %v; want an error, not absent", ok, err)
		}
		if !strings.Contains(err.Error(), "_schemapin.broken.test") {
			t.Errorf("the error does not name the record: %v", err)
		}
	})
	if dns.Queries() == 0 {
		t.Error("the local DNS server was never asked")
	}
}
