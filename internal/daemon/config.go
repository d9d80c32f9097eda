package daemon

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/pflag"

	"github.com/signerd/signerd/internal/auditlog"
	"github.com/signerd/signerd/internal/server"
	"github.com/signerd/signerd/internal/service"
)

// Config is signerd's effective configuration. Precedence is fixed and
// implemented here only: defaults < config file < environment < flags.
type Config struct {
	PKCS11Module    string
	TokenLabel      string
	PINFile         string
	pin             string // never printed; see Redacted
	Store           string // "bbolt:PATH" or "etcd:URL,URL,…" (store.go)
	Socket          string
	SocketMode      os.FileMode
	LogLevel        string
	LogFormat       string
	MaxSessions     int
	ShutdownTimeout time.Duration
	MetricsListen   string
	// MetricsPprof adds Go's profiling endpoints to the metrics listener.
	MetricsPprof bool
	// MetricsMaxConnections bounds the metrics listener's connections, so
	// that it can never take the descriptors the signing listeners need.
	MetricsMaxConnections int
	// Reflection serves gRPC server reflection (on by default).
	Reflection bool
	// Listen is the optional TCP listener (HOST:PORT): mutual TLS with
	// TLSCert, TLSKey and ClientCA, or plaintext on loopback only with
	// InsecureLoopback.
	Listen           string
	TLSCert          string
	TLSKey           string
	ClientCA         string
	InsecureLoopback bool
	// Policy is the policy file; empty means server.DefaultAuthorizer.
	Policy string
	// AuditCheckpointInterval is how often the audit head is signed when
	// it moved (0: only at shutdown).
	AuditCheckpointInterval time.Duration
	// LogOrigin names the transparency log in its checkpoint notes (the
	// first line, and the note key's name); replicas sharing a store use
	// one origin.
	LogOrigin string
	// AcceptState is the hex digest of a security state the audit log does
	// not vouch for that the operator accepts at start (audited); only
	// that exact state is accepted.
	AcceptState string
	// AcceptJournalLoss starts on a bbolt database that was not closed
	// cleanly although its journal is missing or truncated (audited).
	AcceptJournalLoss bool
	// AuditRefusalWindow and AuditRefusalsPerWindow bound the audit
	// records of refusals: per caller and reason, the first
	// AuditRefusalsPerWindow of each window in full, the rest counted in
	// one aggregate record (service/refusals.go).
	AuditRefusalWindow     time.Duration
	AuditRefusalsPerWindow int
	// Client limits (config_limits.go): request size, calls per
	// connection, connections per listener, handshake and keepalive.
	MaxRecvMsgSize       int
	MaxConcurrentStreams int
	MaxConnections       int
	// MaxConnectionsPerPeer: 0 turns the per-peer bound off.
	MaxConnectionsPerPeer int
	// MaxInflightBytesPerPeer: request bytes one peer may have in flight
	// (0: no bound).
	MaxInflightBytesPerPeer int
	HandshakeTimeout        time.Duration
	KeepaliveMinTime        time.Duration
	MaxConnectionIdle       time.Duration

	// MaxUnauthenticated* and TLSHandshakeTimeout bound TCP connections
	// before their TLS handshake completes (0: no bound).
	MaxUnauthenticatedConnections int
	MaxUnauthenticatedPerPeer     int
	TLSHandshakeTimeout           time.Duration

	// HSMPingInterval is how often the token is checked while idle, so a
	// dead one is reported (health NOT_SERVING) before a caller needs it.
	HSMPingInterval time.Duration
	// EtcdCert, EtcdKey and EtcdCA are the client TLS settings of an etcd
	// store; EtcdPrefix is where its keys live (store.go).
	EtcdCert, EtcdKey, EtcdCA, EtcdPrefix string
	// reread loads the configuration again from the same sources, for a
	// reload (reload.go); nil when it was not built by Load.
	reread func() (Config, error)

	// PKCS11URI (RFC 7512) chooses module, token and PIN file in one
	// setting; Load folds it into PKCS11Module, TokenLabel and PINFile and
	// into the token selectors below (pkcs11uri.go).
	PKCS11URI                                  string
	TokenSerial, TokenModel, TokenManufacturer string
}

// Defaults returns the built-in configuration.
func Defaults() Config {
	return Config{
		PKCS11Module:    "/usr/lib/softhsm/libsofthsm2.so",
		TokenLabel:      "signerd",
		Store:           "bbolt:/var/lib/signerd/signerd.db",
		EtcdPrefix:      "/signerd/",
		Socket:          "/run/signerd/signerd.sock",
		SocketMode:      0o660,
		LogLevel:        "info",
		LogFormat:       "text",
		MaxSessions:     8,
		ShutdownTimeout: 30 * time.Second,
		Reflection:      true,

		AuditCheckpointInterval: time.Minute,
		LogOrigin:               service.DefaultLogOrigin(),
		AuditRefusalWindow:      service.DefaultRefusalWindow,
		AuditRefusalsPerWindow:  service.DefaultRefusalFullRecords,

		MaxInflightBytesPerPeer: server.DefaultInflightBytesPerPeer,
		MaxRecvMsgSize:          DefaultMaxRecvMsgSize,
		MaxConcurrentStreams:    DefaultMaxConcurrentStreams,
		MaxConnections:          DefaultMaxConnections,
		MaxConnectionsPerPeer:   DefaultMaxConnectionsPerPeer,
		HandshakeTimeout:        DefaultHandshakeTimeout,
		KeepaliveMinTime:        DefaultKeepaliveMinTime,
		MaxConnectionIdle:       DefaultMaxConnectionIdle,
		HSMPingInterval:         DefaultHSMPingInterval,

		MaxUnauthenticatedConnections: DefaultMaxUnauthenticatedConnections,
		MaxUnauthenticatedPerPeer:     DefaultMaxUnauthenticatedPerPeer,
		TLSHandshakeTimeout:           DefaultTLSHandshakeTimeout,
		MetricsMaxConnections:         DefaultMetricsMaxConnections,
	}
}

// setting is one configuration key: its flag name (also its config-file
// key), its environment variable, and how to apply a string value.
type setting struct {
	name  string
	env   string
	usage string
	apply func(c *Config, v string) error
}

func settings() []setting {
	str := func(f func(*Config) *string) func(*Config, string) error {
		return func(c *Config, v string) error { *f(c) = v; return nil }
	}
	return []setting{
		{"pkcs11-module", "SIGNERD_PKCS11_MODULE", "path of the PKCS#11 library", str(func(c *Config) *string { return &c.PKCS11Module })},
		{"token-label", "SIGNERD_TOKEN_LABEL", "label of the token holding the keys", str(func(c *Config) *string { return &c.TokenLabel })},
		{"pin-file", "", "file holding the token's user PIN (or set SIGNERD_PIN; never a flag value)", str(func(c *Config) *string { return &c.PINFile })},
		{"pkcs11-uri", "SIGNERD_PKCS11_URI", "RFC 7512 URI choosing module, token and PIN file, e.g. 'pkcs11:token=signerd;serial=…?module-path=…&pin-source=file:…'", str(func(c *Config) *string { return &c.PKCS11URI })},
		{"db", "SIGNERD_DB", "bbolt database file (shorthand for --store bbolt:FILE)", func(c *Config, v string) error { c.Store = "bbolt:" + v; return nil }},
		{"store", "SIGNERD_STORE", "where state lives: bbolt:FILE, or etcd:URL,URL,… for several replicas", str(func(c *Config) *string { return &c.Store })},
		{"etcd-cert", "SIGNERD_ETCD_CERT", "PEM client certificate for the etcd cluster (with --etcd-key)", str(func(c *Config) *string { return &c.EtcdCert })},
		{"etcd-key", "SIGNERD_ETCD_KEY", "PEM private key of --etcd-cert", str(func(c *Config) *string { return &c.EtcdKey })},
		{"etcd-ca", "SIGNERD_ETCD_CA", "PEM CA certificate(s) the etcd members' certificates must chain to; turns on TLS to etcd (plaintext only to loopback endpoints)", str(func(c *Config) *string { return &c.EtcdCA })},
		{"etcd-prefix", "SIGNERD_ETCD_PREFIX", "etcd key prefix of this deployment's state", str(func(c *Config) *string { return &c.EtcdPrefix })},
		{"socket", "SIGNERD_SOCKET", "Unix socket to listen on", str(func(c *Config) *string { return &c.Socket })},
		{"socket-mode", "SIGNERD_SOCKET_MODE", "permission bits of the socket, octal", func(c *Config, v string) error {
			m, err := strconv.ParseUint(v, 8, 32)
			if err != nil || m > 0o777 {
				return fmt.Errorf("socket-mode %q is not an octal mode like 0660", v)
			}
			c.SocketMode = os.FileMode(m)
			return nil
		}},
		{"log-level", "SIGNERD_LOG_LEVEL", "debug, info, warn or error", func(c *Config, v string) error {
			_, err := parseLogLevel(v)
			c.LogLevel = v
			return err
		}},
		{"log-format", "SIGNERD_LOG_FORMAT", "text or json", func(c *Config, v string) error {
			_, err := logHandler(v, io.Discard, nil)
			c.LogFormat = v
			return err
		}},
		{"max-sessions", "SIGNERD_MAX_SESSIONS", "PKCS#11 sessions to keep open (bounds concurrent HSM calls)", func(c *Config, v string) error {
			n, err := strconv.Atoi(v)
			if err != nil || n < 1 || n > 1024 {
				return fmt.Errorf("max-sessions %q must be an integer from 1 to 1024", v)
			}
			c.MaxSessions = n
			return nil
		}},
		{"shutdown-timeout", "SIGNERD_SHUTDOWN_TIMEOUT", "how long SIGTERM waits for in-flight calls", func(c *Config, v string) error {
			d, err := time.ParseDuration(v)
			if err != nil || d <= 0 {
				return fmt.Errorf("shutdown-timeout %q is not a positive duration like 30s", v)
			}
			c.ShutdownTimeout = d
			return nil
		}},
		{"max-recv-msg-size", "SIGNERD_MAX_RECV_MSG_SIZE", "largest request accepted, in bytes (or 64KiB, 1MiB); larger ones get RESOURCE_EXHAUSTED",
			sizeSetting("max-recv-msg-size", 4<<10, 64<<20, func(c *Config) *int { return &c.MaxRecvMsgSize })},
		{"max-concurrent-streams", "SIGNERD_MAX_CONCURRENT_STREAMS", "calls one connection may have in flight (more wait in the client)",
			intSetting("max-concurrent-streams", 1, 1<<16, func(c *Config) *int { return &c.MaxConcurrentStreams })},
		{"max-connections", "SIGNERD_MAX_CONNECTIONS", "connections each listener holds open (more wait to be accepted)",
			intSetting("max-connections", 1, 1<<20, func(c *Config) *int { return &c.MaxConnections })},
		{"max-connections-per-peer", "SIGNERD_MAX_CONNECTIONS_PER_PEER", "connections one Unix user or remote host may hold open across all listeners; more are closed at once (TCP: counted from accept, by source address) (0: no bound)",
			intSetting("max-connections-per-peer", 0, 1<<20, func(c *Config) *int { return &c.MaxConnectionsPerPeer })},
		{"max-unauthenticated-connections", "SIGNERD_MAX_UNAUTHENTICATED_CONNECTIONS", "TCP connections that may be in their TLS handshake at once, from all sources; more are closed at accept (0: no bound)",
			intSetting("max-unauthenticated-connections", 0, 1<<20, func(c *Config) *int { return &c.MaxUnauthenticatedConnections })},
		{"max-unauthenticated-connections-per-peer", "SIGNERD_MAX_UNAUTHENTICATED_CONNECTIONS_PER_PEER", "TCP connections one source (IPv4 address, IPv6 /64) may have in their TLS handshake at once; more are closed at accept (0: no bound)",
			intSetting("max-unauthenticated-connections-per-peer", 0, 1<<20, func(c *Config) *int { return &c.MaxUnauthenticatedPerPeer })},
		{"tls-handshake-timeout", "SIGNERD_TLS_HANDSHAKE_TIMEOUT", "how long a TCP connection may take from accept to a completed TLS handshake (within --handshake-timeout)",
			durationSetting("tls-handshake-timeout", 100*time.Millisecond, 10*time.Minute, false, func(c *Config) *time.Duration { return &c.TLSHandshakeTimeout })},
		{"max-inflight-bytes-per-peer", "SIGNERD_MAX_INFLIGHT_BYTES_PER_PEER", "request bytes one Unix user or remote host may have in flight (each call reserves --max-recv-msg-size until its request is read), answers it has not read included; more calls are refused RESOURCE_EXHAUSTED (0: no bound)",
			sizeSetting("max-inflight-bytes-per-peer", 0, 1<<30, func(c *Config) *int { return &c.MaxInflightBytesPerPeer })},
		{"handshake-timeout", "SIGNERD_HANDSHAKE_TIMEOUT", "how long a new connection may take to complete its handshakes before it is closed",
			durationSetting("handshake-timeout", 100*time.Millisecond, 10*time.Minute, false, func(c *Config) *time.Duration { return &c.HandshakeTimeout })},
		{"keepalive-min-time", "SIGNERD_KEEPALIVE_MIN_TIME", "shortest keepalive ping interval allowed to clients (faster ones are disconnected)",
			durationSetting("keepalive-min-time", time.Second, 24*time.Hour, false, func(c *Config) *time.Duration { return &c.KeepaliveMinTime })},
		{"max-connection-idle", "SIGNERD_MAX_CONNECTION_IDLE", "close connections without calls for this long (0: never)",
			durationSetting("max-connection-idle", time.Second, 24*time.Hour, true, func(c *Config) *time.Duration { return &c.MaxConnectionIdle })},
		{"hsm-ping-interval", "SIGNERD_HSM_PING_INTERVAL", "how often the HSM token is checked while idle (0: only when a call fails)",
			durationSetting("hsm-ping-interval", 100*time.Millisecond, time.Hour, true, func(c *Config) *time.Duration { return &c.HSMPingInterval })},
		{"listen", "SIGNERD_LISTEN", "optional TCP listener HOST:PORT; mutual TLS (--tls-cert, --tls-key, --client-ca), or plaintext on loopback with --insecure-loopback", str(func(c *Config) *string { return &c.Listen })},
		{"tls-cert", "SIGNERD_TLS_CERT", "PEM certificate the TCP listener presents", str(func(c *Config) *string { return &c.TLSCert })},
		{"tls-key", "SIGNERD_TLS_KEY", "PEM private key of --tls-cert", str(func(c *Config) *string { return &c.TLSKey })},
		{"client-ca", "SIGNERD_CLIENT_CA", "PEM CA certificate(s) that TCP clients' certificates must chain to", str(func(c *Config) *string { return &c.ClientCA })},
		{"insecure-loopback", "SIGNERD_INSECURE_LOOPBACK", "allow --listen without TLS, on a loopback address only; such callers are the identity tcp-loopback",
			boolSetting("insecure-loopback", func(c *Config) *bool { return &c.InsecureLoopback })},
		{"metrics-listen", "SIGNERD_METRICS_LISTEN", "serve Prometheus metrics on HOST:PORT at /metrics (off by default)", str(func(c *Config) *string { return &c.MetricsListen })},
		{"metrics-pprof", "SIGNERD_METRICS_PPROF", "also serve Go's profiler at /debug/pprof/ on --metrics-listen (off by default; keep that address private)",
			boolSetting("metrics-pprof", func(c *Config) *bool { return &c.MetricsPprof })},
		{"metrics-max-connections", "SIGNERD_METRICS_MAX_CONNECTIONS", "connections the metrics listener holds open (more wait to be accepted)",
			intSetting("metrics-max-connections", 1, 1024, func(c *Config) *int { return &c.MetricsMaxConnections })},
		{"reflection", "SIGNERD_REFLECTION", "serve gRPC server reflection, so grpcurl needs no .proto files (on by default; it shows the public API only; --reflection=false turns it off)",
			boolSetting("reflection", func(c *Config) *bool { return &c.Reflection })},
		{"policy", "SIGNERD_POLICY", "policy file: who may do what (JSON; see README); without it, root and the daemon's uid are admins and socket peers may verify", str(func(c *Config) *string { return &c.Policy })},
		{"audit-checkpoint-interval", "SIGNERD_AUDIT_CHECKPOINT_INTERVAL", "how often to sign an audit checkpoint when the log grew (0: only at shutdown)", func(c *Config, v string) error {
			d, err := time.ParseDuration(v)
			if err != nil || d < 0 || (d > 0 && d < time.Second) {
				return fmt.Errorf("audit-checkpoint-interval %q is not a duration of at least 1s (or 0) like 1m", v)
			}
			c.AuditCheckpointInterval = d
			return nil
		}},
		{"log-origin", "SIGNERD_LOG_ORIGIN", "origin of the transparency log: the first line of its checkpoint notes and the name in its verifier key (default signerd.<hostname>/log; give replicas sharing a store the same one)", func(c *Config, v string) error {
			if err := auditlog.CheckOrigin(v); err != nil {
				return fmt.Errorf("log-origin %q must be printable, without spaces or '+', like signerd.example.com/log", v)
			}
			c.LogOrigin = v
			return nil
		}},
		{"accept-state", "SIGNERD_ACCEPT_STATE", "accept, once and audited, the security state with this digest (hex) although the audit log does not vouch for it; signerd names the digest when it refuses to start", str(func(c *Config) *string { return &c.AcceptState })},
		{"accept-journal-loss", "SIGNERD_ACCEPT_JOURNAL_LOSS", "start, audited, on a database that was not closed cleanly although its journal (DB.journal) is missing or truncated: signatures acknowledged before the stop may be lost; without it signerd refuses and says why",
			boolSetting("accept-journal-loss", func(c *Config) *bool { return &c.AcceptJournalLoss })},
		{"audit-refusal-window", "SIGNERD_AUDIT_REFUSAL_WINDOW", "window of the bound on refusal audit records: beyond --audit-refusals-per-window per caller and reason, refusals are counted into one aggregate record per window",
			durationSetting("audit-refusal-window", time.Second, 24*time.Hour, false, func(c *Config) *time.Duration { return &c.AuditRefusalWindow })},
		{"audit-refusals-per-window", "SIGNERD_AUDIT_REFUSALS_PER_WINDOW", "refusals (failed verifications, denials) per caller and reason written in full in each window; the rest are counted (0: count all)",
			intSetting("audit-refusals-per-window", 0, 1<<20, func(c *Config) *int { return &c.AuditRefusalsPerWindow })},
	}
}

// boolSettings may be given as a bare flag (--insecure-loopback).
var boolSettings = map[string]bool{"insecure-loopback": true, "metrics-pprof": true, "reflection": true, "accept-journal-loss": true}

// registerFlags declares every setting as a string flag; values are applied
// by Load so that the precedence lives in one place.
func registerFlags(fs *pflag.FlagSet) {
	fs.String("config", "", "config file (env SIGNERD_CONFIG); lines of 'key = value', keys as the long flags")
	for _, s := range settings() {
		usage := s.usage
		if s.env != "" {
			usage += " (env " + s.env + ")"
		}
		fs.String(s.name, "", usage)
		if boolSettings[s.name] {
			fs.Lookup(s.name).NoOptDefVal = "true"
		}
	}
}

// Load builds the configuration from defaults, the config file, the
// environment and the flags, in that order of increasing precedence.
func Load(fs *pflag.FlagSet, getenv func(string) string) (Config, error) {
	c := Defaults()
	byName := map[string]setting{}
	for _, s := range settings() {
		byName[s.name] = s
	}
	path, _ := fs.GetString("config")
	if path == "" {
		path = getenv("SIGNERD_CONFIG")
	}
	if path != "" {
		if err := applyFile(&c, path, byName); err != nil {
			return c, err
		}
	}
	// --db is --store bbolt:FILE: given both at one level, one would win
	// in silence.
	db, st := fs.Lookup("db"), fs.Lookup("store")
	flagged := db != nil && db.Changed || st != nil && st.Changed
	if db != nil && st != nil && db.Changed && st.Changed {
		return c, errors.New("--db and --store both given: --db FILE is --store bbolt:FILE; give one")
	}
	// A flag decides over the environment, so a conflict there matters
	// only without one.
	if !flagged && getenv("SIGNERD_DB") != "" && getenv("SIGNERD_STORE") != "" {
		return c, errors.New("SIGNERD_DB and SIGNERD_STORE both set: SIGNERD_DB=FILE is SIGNERD_STORE=bbolt:FILE; set one")
	}
	for _, s := range settings() {
		if s.env == "" {
			continue
		}
		if v := getenv(s.env); v != "" {
			if err := s.apply(&c, v); err != nil {
				return c, fmt.Errorf("%s: %w", s.env, err)
			}
		}
	}
	for _, s := range settings() {
		if f := fs.Lookup(s.name); f != nil && f.Changed {
			if err := s.apply(&c, f.Value.String()); err != nil {
				return c, fmt.Errorf("--%s: %w", s.name, err)
			}
		}
	}
	// SIGNERD_PIN is the environment level of the pin-file setting: an
	// explicit --pin-file flag beats it, as flags beat the environment.
	if f := fs.Lookup("pin-file"); f == nil || !f.Changed {
		c.pin = getenv("SIGNERD_PIN")
	}
	if err := c.applyPKCS11URI(); err != nil {
		return c, err
	}
	c.reread = func() (Config, error) { return Load(fs, getenv) }
	return c, nil
}

// applyFile reads `key = value` lines; '#' starts a comment. Unknown keys
// are errors, so a typo does not silently fall back to a default.
func applyFile(c *Config, path string, byName map[string]setting) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("config file: %w", err)
	}
	sc := bufio.NewScanner(bytes.NewReader(data))
	seen := map[string]int{} // key → its line
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			return fmt.Errorf("%s:%d: want `key = value`", path, n)
		}
		k, v = strings.TrimSpace(k), strings.Trim(strings.TrimSpace(v), `"`)
		if k == "pin" {
			return fmt.Errorf("%s:%d: the PIN does not belong in the config file; use pin-file or SIGNERD_PIN", path, n)
		}
		s, ok := byName[k]
		if !ok {
			return fmt.Errorf("%s:%d: unknown key %q", path, n, k)
		}
		// db is store = bbolt:FILE: both in one file, one would win in
		// silence.
		if other := map[string]string{"db": "store", "store": "db"}[k]; other != "" && seen[other] > 0 {
			return fmt.Errorf("%s:%d: %s and %s (line %d) both set: db = FILE is store = bbolt:FILE; set one", path, n, k, other, seen[other])
		}
		seen[k] = n
		if err := s.apply(c, v); err != nil {
			return fmt.Errorf("%s:%d: %w", path, n, err)
		}
	}
	return sc.Err()
}

// PIN returns the token PIN from SIGNERD_PIN or the pin file.
func (c Config) PIN() (string, error) {
	if c.pin != "" {
		return c.pin, nil
	}
	if c.PINFile == "" {
		return "", fmt.Errorf("no PIN: give --pin-file FILE or set SIGNERD_PIN")
	}
	st, err := os.Stat(c.PINFile)
	if err != nil {
		return "", fmt.Errorf("pin file: %w", err)
	}
	if st.Mode().Perm()&0o077 != 0 {
		return "", fmt.Errorf("pin file %s is readable by others (mode %o); chmod 600 it", c.PINFile, st.Mode().Perm())
	}
	b, err := os.ReadFile(c.PINFile)
	if err != nil {
		return "", fmt.Errorf("pin file: %w", err)
	}
	pin := strings.TrimRight(string(b), "\r\n")
	if pin == "" {
		return "", fmt.Errorf("pin file %s is empty", c.PINFile)
	}
	return pin, nil
}

// DBPath returns the bbolt file of a bbolt: store; an etcd: store has
// none (an error says so). The daemon opens either through parseStore and
// openStore (store.go).
func (c Config) DBPath() (string, error) {
	kind, rest, ok := strings.Cut(c.Store, ":")
	switch {
	case !ok || rest == "":
		return "", fmt.Errorf("store %q: want bbolt:FILE or etcd:URL,URL,…", c.Store)
	case kind == "bbolt":
		return rest, nil
	case kind == "etcd":
		return "", fmt.Errorf("store %q is an etcd cluster, not a bbolt file", c.Store)
	}
	return "", fmt.Errorf("store %q: unknown backend %q (want bbolt or etcd)", c.Store, kind)
}

// redactedAliases are the settings that set another setting rather than a
// value of their own, so `signerd config` shows them under that setting:
// --db FILE is --store bbolt:FILE.
var redactedAliases = map[string]string{"db": "store"}

// Redacted renders the configuration for humans with the PIN hidden: one
// `key = value` line for every setting in settings() (but redactedAliases),
// which TestRedactedShowsEverySetting checks.
func (c Config) Redacted() string {
	pin := "(none: give --pin-file or SIGNERD_PIN)"
	switch {
	case c.pin != "":
		pin = "(from SIGNERD_PIN, redacted)"
	case c.PINFile != "":
		pin = "(from pin-file)"
	}
	return fmt.Sprintf("pkcs11-module = %s\ntoken-label = %s\npin-file = %s\npin = %s\npkcs11-uri = %s\nstore = %s\nsocket = %s\nsocket-mode = %04o\nlog-level = %s\nlog-format = %s\nmax-sessions = %d\nshutdown-timeout = %s\n",
		c.PKCS11Module, c.TokenLabel, c.PINFile, pin, c.PKCS11URI, c.Store, c.Socket, c.SocketMode, c.LogLevel, c.LogFormat, c.MaxSessions, c.ShutdownTimeout) +
		fmt.Sprintf("listen = %s\ntls-cert = %s\ntls-key = %s\nclient-ca = %s\ninsecure-loopback = %t\npolicy = %s\n",
			c.Listen, c.TLSCert, c.TLSKey, c.ClientCA, c.InsecureLoopback, c.Policy) +
		fmt.Sprintf("audit-checkpoint-interval = %s\nlog-origin = %s\naudit-refusal-window = %s\naudit-refusals-per-window = %d\naccept-state = %s\naccept-journal-loss = %t\n",
			c.AuditCheckpointInterval, c.LogOrigin, c.AuditRefusalWindow, c.AuditRefusalsPerWindow, c.AcceptState, c.AcceptJournalLoss) +
		fmt.Sprintf("reflection = %t\nmetrics-listen = %s\nmetrics-pprof = %t\n", c.Reflection, c.MetricsListen, c.MetricsPprof) +
		c.reliabilityRedacted() + c.storeRedacted()
}
