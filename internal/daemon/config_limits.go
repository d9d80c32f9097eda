package daemon

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Defaults of the client limits and the HSM health check (README,
// "Configuration" and "Reliability").
const (
	// DefaultMaxRecvMsgSize bounds a request: signing requests carry
	// digests, not artifacts, so 1 MiB is generous.
	DefaultMaxRecvMsgSize = 1 << 20
	// DefaultMaxConcurrentStreams bounds the calls one connection has in
	// flight; more queue in the client.
	DefaultMaxConcurrentStreams = 128
	// DefaultMaxConnections bounds the connections a listener holds open;
	// further ones wait in the kernel's accept queue until one closes.
	DefaultMaxConnections = 1024
	// DefaultMaxConnectionsPerPeer bounds the connections one Unix user
	// or remote host holds open, so that one of them cannot take all of
	// DefaultMaxConnections.
	DefaultMaxConnectionsPerPeer = 256
	// DefaultMaxUnauthenticatedConnections is the share of TCP slots
	// given to connections before their TLS handshake completes, when
	// nothing yet tells a client from a stranger: 1/16 of
	// DefaultMaxConnections.
	DefaultMaxUnauthenticatedConnections = 64
	// DefaultMaxUnauthenticatedPerPeer is one source address's part of
	// that share, so that a few addresses cannot take all of it.
	DefaultMaxUnauthenticatedPerPeer = 8
	// DefaultTLSHandshakeTimeout is the short budget of a TLS handshake:
	// one round trip and two signatures, seconds even across the world.
	DefaultTLSHandshakeTimeout = 3 * time.Second
	// DefaultMetricsMaxConnections bounds the metrics listener: a scraper
	// or two and a person with curl.
	DefaultMetricsMaxConnections = 16
	// DefaultHandshakeTimeout closes connections that have not completed
	// the transport and HTTP/2 handshakes (silent or slow clients).
	DefaultHandshakeTimeout = 10 * time.Second
	// DefaultKeepaliveMinTime is the shortest keepalive ping interval a
	// client may use; clients pinging faster are disconnected.
	DefaultKeepaliveMinTime = 10 * time.Second
	// DefaultMaxConnectionIdle closes connections without calls for that
	// long (clients reconnect transparently on their next call).
	DefaultMaxConnectionIdle = 15 * time.Minute
	// DefaultHSMPingInterval is how often the token is checked while idle.
	DefaultHSMPingInterval = 5 * time.Second
)

// sizeSetting applies a byte size: a plain number of bytes or one with a
// KiB or MiB suffix, within [lo, hi].
func sizeSetting(name string, lo, hi int, dst func(*Config) *int) func(*Config, string) error {
	return func(c *Config, v string) error {
		n, err := parseSize(v)
		if err != nil || n < lo || n > hi {
			return fmt.Errorf("%s %q must be a size from %d to %d bytes (suffixes KiB and MiB allowed, e.g. 1MiB)", name, v, lo, hi)
		}
		*dst(c) = n
		return nil
	}
}

func parseSize(v string) (int, error) {
	mult := 1
	s := strings.TrimSpace(v)
	switch {
	case strings.HasSuffix(s, "MiB"):
		mult, s = 1<<20, strings.TrimSuffix(s, "MiB")
	case strings.HasSuffix(s, "KiB"):
		mult, s = 1<<10, strings.TrimSuffix(s, "KiB")
	}
	n, err := strconv.Atoi(strings.TrimSpace(s))
	if err != nil || n < 0 || n > (1<<31-1)/mult {
		return 0, fmt.Errorf("bad size %q", v)
	}
	return n * mult, nil
}

// intSetting applies an integer within [lo, hi].
func intSetting(name string, lo, hi int, dst func(*Config) *int) func(*Config, string) error {
	return func(c *Config, v string) error {
		n, err := strconv.Atoi(v)
		if err != nil || n < lo || n > hi {
			return fmt.Errorf("%s %q must be an integer from %d to %d", name, v, lo, hi)
		}
		*dst(c) = n
		return nil
	}
}

// boolSetting applies true or false (1, 0, t, f… as strconv.ParseBool).
// The flags it backs are listed in boolSettings, so a bare --name means
// true.
func boolSetting(name string, dst func(*Config) *bool) func(*Config, string) error {
	return func(c *Config, v string) error {
		b, err := strconv.ParseBool(v)
		if err != nil {
			return fmt.Errorf("%s %q is not true or false", name, v)
		}
		*dst(c) = b
		return nil
	}
}

// durationSetting applies a duration within [lo, hi]; zero is allowed
// when zeroOK (it then means "off").
func durationSetting(name string, lo, hi time.Duration, zeroOK bool, dst func(*Config) *time.Duration) func(*Config, string) error {
	return func(c *Config, v string) error {
		d, err := time.ParseDuration(v)
		if err != nil || (d == 0 && !zeroOK) || (d != 0 && (d < lo || d > hi)) {
			off := ""
			if zeroOK {
				off = " (0 turns it off)"
			}
			return fmt.Errorf("%s %q must be a duration from %s to %s%s", name, v, lo, hi, off)
		}
		*dst(c) = d
		return nil
	}
}

// reliabilityRedacted renders the limits for `signerd config`.
func (c Config) reliabilityRedacted() string {
	return fmt.Sprintf("max-recv-msg-size = %d\nmax-concurrent-streams = %d\nmax-connections = %d\nmax-connections-per-peer = %d\nhandshake-timeout = %s\nkeepalive-min-time = %s\nmax-connection-idle = %s\nhsm-ping-interval = %s\n",
		c.MaxRecvMsgSize, c.MaxConcurrentStreams, c.MaxConnections, c.MaxConnectionsPerPeer, c.HandshakeTimeout, c.KeepaliveMinTime, c.MaxConnectionIdle, c.HSMPingInterval) +
		fmt.Sprintf("max-unauthenticated-connections = %d\nmax-unauthenticated-connections-per-peer = %d\ntls-handshake-timeout = %s\nmetrics-max-connections = %d\nmax-inflight-bytes-per-peer = %d\n",
			c.MaxUnauthenticatedConnections, c.MaxUnauthenticatedPerPeer, c.TLSHandshakeTimeout, c.MetricsMaxConnections, c.MaxInflightBytesPerPeer)
}
