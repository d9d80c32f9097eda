package resolve_test

import (
	"context"
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/signerd/signerd/internal/skill"
	"github.com/signerd/signerd/internal/skill/resolve"
)

// A discovery document's revocation_endpoint is fetched only from the
// discovery document's own host and port, as redirects are: one naming
// another host, port or an address is refused before anything is
// requested, so a document's author cannot make verifiers fetch from, or
// probe, hosts of their choosing.
func TestRevocationEndpointHeldToDiscoveryHost(t *testing.T) {
	for _, tc := range []struct{ name, endpoint string }{
		{"another host", "https://other.test/revoked.json"},
		{"another port", "https://example.test:8443/revoked.json"},
		{"an address", "https://127.0.0.1/revoked.json"},
		{"userinfo naming the host", "https://example.test@other.test/revoked.json"},
		{"a subdomain", "https://cdn.example.test/revoked.json"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, _, f := newSite(t, resolve.WithHostAddr("cdn.example.test", "127.0.0.1:1"))
			body, fp := discoveryJSON(t, func(d *skill.Discovery) { d.RevocationEndpoint = tc.endpoint })
			s.json(wellKnown, body)
			s.json("other.test/revoked.json", revocationJSON(t, fp))
			_, err := f.Resolve(context.Background(), "example.test")
			fe := asFetchError(t, err, resolve.DocRevocation)
			if !errors.Is(err, resolve.ErrEndpointRefused) {
				t.Fatalf("err = %v, want ErrEndpointRefused", err)
			}
			if fe.StatusCode != 0 {
				t.Errorf("a refused endpoint reports HTTP status %d", fe.StatusCode)
			}
			if got := s.requested(); len(got) != 1 || got[0] != wellKnown {
				t.Errorf("requests made: %v, want only the discovery document", got)
			}
		})
	}
}

// Without AllowPrivateAddresses, the Fetcher does not connect to loopback,
// private, link-local or unspecified addresses, checked on the address a
// name resolved to when connecting: a mapped name, "localhost" (resolved
// by the system) and address literals alike. The error is the same
// whether something listens there or not, and nothing is requested.
// (Only addresses of this host are dialled here; refusePrivate's test
// covers the other kinds without sending a packet anywhere.)
func TestPrivateAddressesRefused(t *testing.T) {
	s, srv, _ := newSite(t)
	body, _ := discoveryJSON(t, nil)
	s.json(wellKnown, body)
	live := srv.Addr()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := l.Addr().String()
	l.Close()
	_, livePort, _ := net.SplitHostPort(live)
	_, deadPort, _ := net.SplitHostPort(dead)

	for _, tc := range []struct{ name, domain, mapTo, wantIn string }{
		{"name mapped to a listening loopback port", "example.test", live, "127.0.0.1 is a loopback address"},
		{"name mapped to a closed loopback port", "example.test", dead, "127.0.0.1 is a loopback address"},
		{"localhost, through the system resolver", "localhost:" + livePort, "", "is a loopback address"},
		{"localhost, closed port", "localhost:" + deadPort, "", "is a loopback address"},
		{"unspecified", "example.test", "0.0.0.0:" + livePort, "0.0.0.0 is a unspecified address"},
		{"IPv4-mapped IPv6 loopback", "example.test", "[::ffff:127.0.0.1]:" + livePort, "127.0.0.1 is a loopback address"},
		{"IPv6 loopback", "example.test", "[::1]:" + livePort, "::1 is a loopback address"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			opts := []resolve.Option{resolve.WithRootCAs(srv.Roots), resolve.WithTimeout(5 * time.Second)}
			if tc.mapTo != "" {
				opts = append(opts, resolve.WithHostAddr("example.test", tc.mapTo))
			}
			f := resolve.New(opts...)
			defer f.CloseIdleConnections()
			_, _, err := f.Discovery(context.Background(), tc.domain)
			fe := asFetchError(t, err, resolve.DocDiscovery)
			if !errors.Is(err, resolve.ErrPrivateAddress) || !strings.Contains(err.Error(), tc.wantIn) {
				t.Fatalf("err = %v, want ErrPrivateAddress saying %q", err, tc.wantIn)
			}
			if fe.StatusCode != 0 || strings.Contains(err.Error(), "connection refused") {
				t.Errorf("the refusal tells what is at the address: %v (status %d)", err, fe.StatusCode)
			}
		})
	}
	if got := s.requested(); len(got) != 0 {
		t.Errorf("requests reached a server: %v", got)
	}

	// AllowPrivateAddresses lets the same fetch through.
	s2, _, f := newSite(t)
	s2.json(wellKnown, body)
	if _, _, err := f.Discovery(context.Background(), "example.test"); err != nil {
		t.Fatalf("with AllowPrivateAddresses: %v", err)
	}
}
