// Package resolve fetches the trust material of SchemaPin skill
// verification from the network: the discovery document
// https://DOMAIN/.well-known/schemapin.json, the revocation document its
// revocation_endpoint names, and the _schemapin.DOMAIN DNS TXT record
// (spec §7, §8, §9, §12 of shared/specs/schemapin-upstream.md).
//
// It plays the part of upstream's WellKnownResolver, with the defensive
// choices of the Rust SDK where the SDKs differ:
//
//   - HTTPS only: an http:// discovery URL or revocation_endpoint is refused,
//     and so is a redirect to http://;
//   - redirects are followed only to the same host and port (upstream Go
//     follows any; Rust follows none), at most five;
//   - every fetch is bounded in time (default 10 s, as upstream Go) and size
//     (default 256 KiB: the documents are a few hundred bytes);
//   - a revocation_endpoint that is named but cannot be fetched or parsed is
//     an error (fail closed, as Rust; upstream Go ignores it);
//   - the revocation_endpoint must be on the discovery document's host and
//     port, as redirects must: a document naming another host would make
//     the verifier fetch from wherever its author chose (a request forgery,
//     and a port probe of the verifier's network);
//   - loopback, private, link-local and unspecified addresses are refused
//     when connecting, on the address DNS gave (a net.Dialer Control
//     function), so a name that resolves, or is rebound, to an internal
//     address does not reach it; AllowPrivateAddresses lifts this.
//
// Documents are parsed with the pure internal/skill package; the verdict is
// still skill.VerifyOffline's. Tests point a Fetcher at loopback servers with
// WithRootCAs, WithHostAddr, WithResolver and AllowPrivateAddresses (see
// package resolvetest).
package resolve

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/signerd/signerd/internal/skill"
)

// Defaults of a Fetcher.
const (
	// DefaultTimeout bounds each fetch (connect, TLS, redirects and body)
	// and each DNS lookup; upstream Go's http.Client uses the same 10 s.
	DefaultTimeout = 10 * time.Second
	// DefaultMaxBodySize bounds a fetched document. Discovery and revocation
	// documents are a few hundred bytes; a server sending megabytes is
	// broken or hostile, and reading it whole would cost memory for nothing.
	DefaultMaxBodySize = 256 << 10
	// maxRedirects is how many same-host redirects are followed.
	maxRedirects = 5
)

// Errors a fetch can fail with, wrapped in a *FetchError. Test with
// errors.Is.
var (
	// ErrInsecureURL: the URL (or a redirect target) is not https://.
	ErrInsecureURL = errors.New("only https:// URLs are fetched")
	// ErrRedirectRefused: a redirect left the original host, switched to
	// http, or there were too many.
	ErrRedirectRefused = errors.New("redirect refused")
	// ErrBodyTooLarge: the response is larger than the size limit.
	ErrBodyTooLarge = errors.New("response body too large")
	// ErrHTTPStatus: the response status is not 200 OK.
	ErrHTTPStatus = errors.New("unexpected HTTP status")
	// ErrEndpointRefused: the revocation_endpoint names another host (or
	// port) than the discovery document's. Nothing was fetched.
	ErrEndpointRefused = errors.New("revocation endpoint refused")
	// ErrPrivateAddress: the host resolved to a loopback, private,
	// link-local or unspecified address and AllowPrivateAddresses was not
	// given. No connection was made.
	ErrPrivateAddress = errors.New("refusing to connect to a non-public address")
)

// Document names used in FetchError.
const (
	DocDiscovery  = "discovery"
	DocRevocation = "revocation"
)

// FetchError reports a document that could not be fetched or parsed.
// Err is one of the Err* sentinels, a network or timeout error
// (errors.Is(err, context.DeadlineExceeded) for a timeout), or the parse
// error of the skill package (wrapping errdefs.ErrInvalidArgument).
type FetchError struct {
	// Document is DocDiscovery or DocRevocation.
	Document string
	// URL is the URL that was asked for (before redirects).
	URL string
	// StatusCode is the HTTP status when a response arrived, else 0.
	StatusCode int
	// Err is the cause.
	Err error
}

// Error names the document, its URL and the cause.
func (e *FetchError) Error() string {
	return fmt.Sprintf("cannot fetch the %s document %s: %v", e.Document, e.URL, e.Err)
}

// Unwrap returns the cause.
func (e *FetchError) Unwrap() error { return e.Err }

// Fetcher fetches discovery and revocation documents over HTTPS and looks
// up DNS TXT records. It is safe for concurrent use. The zero value is not
// usable; call New.
type Fetcher struct {
	client   *http.Client
	resolver *net.Resolver
	timeout  time.Duration
	maxBody  int64
}

type config struct {
	timeout      time.Duration
	maxBody      int64
	roots        *x509.CertPool
	hostAddrs    map[string]string
	resolver     *net.Resolver
	allowPrivate bool
}

// Option configures New.
type Option func(*config)

// WithTimeout bounds each fetch and each DNS lookup (default
// DefaultTimeout). A non-positive d keeps the default: an unbounded fetch
// is never what a verifier wants.
func WithTimeout(d time.Duration) Option {
	return func(c *config) {
		if d > 0 {
			c.timeout = d
		}
	}
}

// WithMaxBodySize bounds a fetched document in bytes (default
// DefaultMaxBodySize). A non-positive n keeps the default.
func WithMaxBodySize(n int64) Option {
	return func(c *config) {
		if n > 0 {
			c.maxBody = n
		}
	}
}

// WithRootCAs replaces the system roots with pool for verifying servers.
// Tests use it with a CA of their own; production keeps the system roots
// (which SSL_CERT_FILE and SSL_CERT_DIR already adjust).
func WithRootCAs(pool *x509.CertPool) Option {
	return func(c *config) { c.roots = pool }
}

// WithHostAddr makes connections to host (any port) go to addr
// ("127.0.0.1:8443") instead of what DNS says, keeping host as the TLS
// server name and the HTTP Host: the certificate must still be valid for
// host. Tests serve https://example.test/ from a loopback server this way.
// With any mapping set, proxies from the environment are not used, so the
// mapping cannot be bypassed.
func WithHostAddr(host, addr string) Option {
	return func(c *config) {
		if c.hostAddrs == nil {
			c.hostAddrs = map[string]string{}
		}
		c.hostAddrs[strings.ToLower(strings.TrimSuffix(host, "."))] = addr
	}
}

// WithResolver sets the resolver LookupTXT uses (default
// net.DefaultResolver, the system's). Tests give one whose Dial reaches a
// local DNS server.
func WithResolver(r *net.Resolver) Option {
	return func(c *config) { c.resolver = r }
}

// AllowPrivateAddresses lets the Fetcher connect to loopback, private
// and link-local addresses, which it refuses by default (see
// ErrPrivateAddress): for trust documents served inside a private network,
// and for tests' loopback servers. signctl's --allow-private-endpoints.
func AllowPrivateAddresses() Option {
	return func(c *config) { c.allowPrivate = true }
}

// New returns a Fetcher.
func New(opts ...Option) *Fetcher {
	cfg := config{timeout: DefaultTimeout, maxBody: DefaultMaxBodySize, resolver: net.DefaultResolver}
	for _, o := range opts {
		o(&cfg)
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = &tls.Config{RootCAs: cfg.roots, MinVersion: tls.VersionTLS12}
	dialer := &net.Dialer{Timeout: cfg.timeout, KeepAlive: 30 * time.Second}
	if !cfg.allowPrivate {
		dialer.Control = refusePrivate
	}
	// A proxy from the environment is the operator's choice, and may well
	// be on a private address: it is dialled without the check, and it
	// then decides where the request goes.
	proxies := &sync.Map{}
	if tr.Proxy != nil {
		fromEnv := tr.Proxy
		tr.Proxy = func(r *http.Request) (*url.URL, error) {
			u, err := fromEnv(r)
			if u != nil {
				proxies.Store(proxyAddr(u), true)
			}
			return u, err
		}
	}
	proxyDialer := &net.Dialer{Timeout: cfg.timeout, KeepAlive: 30 * time.Second}
	addrs := cfg.hostAddrs
	if len(addrs) > 0 {
		tr.Proxy = nil // the mapping cannot be bypassed
	}
	tr.DialContext = func(ctx context.Context, network, address string) (net.Conn, error) {
		if _, ok := proxies.Load(address); ok {
			return proxyDialer.DialContext(ctx, network, address)
		}
		if host, _, err := net.SplitHostPort(address); err == nil {
			if a, ok := addrs[strings.ToLower(strings.TrimSuffix(host, "."))]; ok {
				address = a
			}
		}
		return dialer.DialContext(ctx, network, address)
	}
	f := &Fetcher{resolver: cfg.resolver, timeout: cfg.timeout, maxBody: cfg.maxBody}
	f.client = &http.Client{Transport: tr, CheckRedirect: checkRedirect}
	return f
}

// CloseIdleConnections closes the connections kept alive for reuse. A
// short-lived user such as signctl calls it when done.
func (f *Fetcher) CloseIdleConnections() { f.client.CloseIdleConnections() }

// checkRedirect follows a redirect only within the host (and port) first
// asked for and only over https. A discovery document vouches for a
// domain's key, so it must come from that domain: a redirect elsewhere
// would let whoever controls the target (an open redirect, a hijacked
// CDN name) choose the key. Upstream Go follows any redirect; Rust none.
func checkRedirect(req *http.Request, via []*http.Request) error {
	if len(via) >= maxRedirects {
		return fmt.Errorf("%w: more than %d redirects", ErrRedirectRefused, maxRedirects)
	}
	if req.URL.Scheme != "https" {
		return fmt.Errorf("%w to %s: %w", ErrRedirectRefused, req.URL.Redacted(), ErrInsecureURL)
	}
	if first := via[0].URL; !sameHost(first, req.URL) {
		return fmt.Errorf("%w: %s redirects to another host (%s); a domain's trust documents must be served by that domain",
			ErrRedirectRefused, first.Host, req.URL.Host)
	}
	return nil
}

func sameHost(a, b *url.URL) bool {
	return strings.EqualFold(strings.TrimSuffix(a.Hostname(), "."), strings.TrimSuffix(b.Hostname(), ".")) &&
		effectivePort(a) == effectivePort(b)
}

func effectivePort(u *url.URL) string {
	if p := u.Port(); p != "" {
		return p
	}
	return "443"
}

// Discovery fetches and parses https://domain/.well-known/schemapin.json
// and applies upstream's fetch-time validity rule (schema_version and a
// P-256 public_key_pem present; spec §8). It returns the document and the
// URL it was fetched from. Every failure is a *FetchError; upstream reports
// them all as discovery_fetch_failed (spec §12).
func (f *Fetcher) Discovery(ctx context.Context, domain string) (*skill.Discovery, string, error) {
	u, err := skill.WellKnownURL(domain)
	if err != nil {
		return nil, "", &FetchError{Document: DocDiscovery, URL: domain, Err: err}
	}
	data, err := f.get(ctx, DocDiscovery, u)
	if err != nil {
		return nil, u, err
	}
	d, err := skill.ParseDiscovery(data)
	if err == nil {
		err = d.Validate()
	}
	if err != nil {
		return nil, u, &FetchError{Document: DocDiscovery, URL: u, StatusCode: http.StatusOK, Err: err}
	}
	return d, u, nil
}

// Revocation fetches and parses the revocation document at endpoint.
// A relative endpoint is resolved against base (the discovery URL), so
// "/.well-known/schemapin-revocations.json" means the discovery host; the
// result must be https and, when base is given, on base's host and port
// (ErrEndpointRefused, before any connection). It returns the parsed
// document, its bytes (for skill.VerifyInput.RevocationJSON) and the
// absolute URL. Every failure is a *FetchError: callers must treat it as a
// failed verification, never as "no revocations" (fail closed).
func (f *Fetcher) Revocation(ctx context.Context, endpoint, base string) (*skill.RevocationDocument, []byte, string, error) {
	u, err := resolveRef(endpoint, base)
	if err != nil {
		return nil, nil, endpoint, &FetchError{Document: DocRevocation, URL: endpoint, Err: err}
	}
	if base != "" {
		b, berr := url.Parse(base)
		r, rerr := url.Parse(u)
		if berr != nil || rerr != nil || !sameHost(b, r) {
			return nil, nil, u, &FetchError{Document: DocRevocation, URL: u, Err: fmt.Errorf(
				"%w: it must be served by the discovery document's host %s, as redirects must", ErrEndpointRefused, hostOf(b))}
		}
	}
	data, err := f.get(ctx, DocRevocation, u)
	if err != nil {
		return nil, nil, u, err
	}
	doc, err := skill.ParseRevocation(data)
	if err != nil {
		return nil, nil, u, &FetchError{Document: DocRevocation, URL: u, StatusCode: http.StatusOK, Err: err}
	}
	return doc, data, u, nil
}

// Resolution is what Resolve found for a domain.
type Resolution struct {
	// Discovery is the domain's discovery document.
	Discovery *skill.Discovery
	// DiscoveryURL is where it came from.
	DiscoveryURL string
	// Revocation is the standalone revocation document, nil when the
	// discovery document names no revocation_endpoint.
	Revocation *skill.RevocationDocument
	// RevocationJSON is Revocation's bytes as served.
	RevocationJSON []byte
	// RevocationURL is the absolute URL of Revocation.
	RevocationURL string
}

// Resolve is upstream's WellKnownResolver (spec §12) made fail-closed:
// the discovery document, then the revocation document its
// revocation_endpoint names. An error from either is a *FetchError whose
// Document says which; a named but unreachable revocation document is an
// error, not an absent one.
func (f *Fetcher) Resolve(ctx context.Context, domain string) (*Resolution, error) {
	d, u, err := f.Discovery(ctx, domain)
	if err != nil {
		return nil, err
	}
	res := &Resolution{Discovery: d, DiscoveryURL: u}
	if strings.TrimSpace(d.RevocationEndpoint) == "" {
		return res, nil
	}
	res.Revocation, res.RevocationJSON, res.RevocationURL, err = f.Revocation(ctx, d.RevocationEndpoint, u)
	if err != nil {
		return nil, err
	}
	return res, nil
}

// resolveRef makes ref absolute against base and insists on https.
func resolveRef(ref, base string) (string, error) {
	r, err := url.Parse(strings.TrimSpace(ref))
	if err != nil {
		return "", fmt.Errorf("bad URL %q: %w", ref, err)
	}
	if !r.IsAbs() && base != "" {
		b, err := url.Parse(base)
		if err != nil {
			return "", fmt.Errorf("bad base URL %q: %w", base, err)
		}
		r = b.ResolveReference(r)
	}
	if r.Scheme != "https" || r.Host == "" {
		return "", fmt.Errorf("%q: %w", ref, ErrInsecureURL)
	}
	return r.String(), nil
}

// get fetches rawURL with the Fetcher's limits and returns the body of a
// 200 response.
func (f *Fetcher) get(ctx context.Context, doc, rawURL string) ([]byte, error) {
	fail := func(status int, err error) error {
		return &FetchError{Document: doc, URL: rawURL, StatusCode: status, Err: err}
	}
	if u, err := url.Parse(rawURL); err != nil || u.Scheme != "https" || u.Host == "" {
		return nil, fail(0, ErrInsecureURL)
	}
	parent := ctx
	ctx, cancel := context.WithTimeout(ctx, f.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, rawURL, nil)
	if err != nil {
		return nil, fail(0, err)
	}
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", "signerd-schemapin-resolver/1")
	resp, err := f.client.Do(req)
	if err != nil {
		return nil, fail(0, f.cause(parent, ctx, err))
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		// Drain a little so the connection can be reused; never much.
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 4<<10))
		return nil, fail(resp.StatusCode, fmt.Errorf("%w: %s (want 200 OK)", ErrHTTPStatus, resp.Status))
	}
	if resp.ContentLength > f.maxBody {
		return nil, fail(resp.StatusCode, fmt.Errorf("%w: %d bytes announced, limit %d", ErrBodyTooLarge, resp.ContentLength, f.maxBody))
	}
	data, err := io.ReadAll(io.LimitReader(resp.Body, f.maxBody+1))
	if err != nil {
		return nil, fail(resp.StatusCode, f.cause(parent, ctx, err))
	}
	if int64(len(data)) > f.maxBody {
		return nil, fail(resp.StatusCode, fmt.Errorf("%w: more than %d bytes", ErrBodyTooLarge, f.maxBody))
	}
	return data, nil
}

// cause strips http.Client's *url.Error (FetchError already names the URL)
// and says when the Fetcher's own deadline, rather than the caller's
// context, cut the fetch short.
func (f *Fetcher) cause(parent, ctx context.Context, err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err
	}
	if perr := parent.Err(); perr != nil {
		return perr
	}
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return fmt.Errorf("no complete answer within %v: %w", f.timeout, context.DeadlineExceeded)
	}
	return err
}

// hostOf is u's host for messages ("" for nil).
func hostOf(u *url.URL) string {
	if u == nil {
		return ""
	}
	return u.Host
}

// proxyAddr is the host:port the transport dials for proxy u.
func proxyAddr(u *url.URL) string {
	port := u.Port()
	if port == "" {
		port = map[string]string{"http": "80", "https": "443", "socks5": "1080", "socks5h": "1080"}[u.Scheme]
	}
	return net.JoinHostPort(u.Hostname(), port)
}

// refusePrivate is a net.Dialer Control function: it runs on the address
// DNS answered, right before connect(2), so neither a name that resolves
// to an internal address nor one rebound to it between lookups gets
// through. The error is the same whether anything listens there or not.
func refusePrivate(_, address string, _ syscall.RawConn) error {
	ap, err := netip.ParseAddrPort(address)
	if err != nil {
		return fmt.Errorf("%w: cannot tell what %s is", ErrPrivateAddress, address)
	}
	if kind := nonPublic(ap.Addr().Unmap()); kind != "" {
		return fmt.Errorf("%w: %s is a %s address (signctl skill verify --allow-private-endpoints allows it)", ErrPrivateAddress, ap.Addr().Unmap(), kind)
	}
	return nil
}

// nonPublic names the kind of a loopback, private, link-local, shared
// (carrier-grade NAT) or unspecified address; "" for any other.
func nonPublic(a netip.Addr) string {
	switch {
	case a.IsLoopback():
		return "loopback"
	case a.IsPrivate():
		return "private"
	case a.IsLinkLocalUnicast(), a.IsLinkLocalMulticast():
		return "link-local"
	case a.IsUnspecified():
		return "unspecified"
	case sharedSpace.Contains(a):
		return "shared (carrier-grade NAT)"
	}
	return ""
}

// sharedSpace is RFC 6598's 100.64.0.0/10.
var sharedSpace = netip.MustParsePrefix("100.64.0.0/10")
