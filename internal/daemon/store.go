package daemon

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"os"
	"strings"

	"github.com/signerd/signerd/internal/server"
	"github.com/signerd/signerd/internal/store"
	"github.com/signerd/signerd/internal/store/boltstore"
	"github.com/signerd/signerd/internal/store/etcdstore"
)

// storeSpec is a parsed --store value: bbolt:FILE or etcd:URL,URL,….
type storeSpec struct {
	kind      string   // "bbolt" or "etcd"
	path      string   // bbolt: the file
	endpoints []string // etcd: client URLs, scheme included
	tls       bool     // etcd: TLS to the cluster
	prefix    string   // etcd: key prefix
}

// String describes the store for logs (no secrets: TLS file names only).
func (s storeSpec) String() string {
	if s.kind == "bbolt" {
		return "bbolt:" + s.path
	}
	return fmt.Sprintf("etcd:%s (prefix %s)", strings.Join(s.endpoints, ","), s.prefix)
}

// defaultEtcdPort is etcd's client port, used when an endpoint names none.
const defaultEtcdPort = "2379"

// parseStore validates the store settings before anything is opened, so a
// misconfiguration stops start-up with a clear message. etcd is reached
// over TLS when any of --etcd-ca, --etcd-cert, --etcd-key is given or an
// endpoint says https://; plaintext is allowed to loopback endpoints only,
// as the daemon's own TCP listener (checkListen).
func parseStore(store string, c Config) (storeSpec, error) {
	kind, rest, ok := strings.Cut(store, ":")
	etcdTLSGiven := c.EtcdCA != "" || c.EtcdCert != "" || c.EtcdKey != ""
	switch {
	case !ok || rest == "":
		return storeSpec{}, fmt.Errorf("store %q: want bbolt:FILE or etcd:URL,URL,…", store)
	case kind == "bbolt":
		if etcdTLSGiven {
			return storeSpec{}, errors.New("--etcd-cert, --etcd-key and --etcd-ca configure an etcd store, but the store is bbolt")
		}
		return storeSpec{kind: kind, path: rest}, nil
	case kind != "etcd":
		return storeSpec{}, fmt.Errorf("store %q: unknown backend %q (want bbolt or etcd)", store, kind)
	}
	if (c.EtcdCert == "") != (c.EtcdKey == "") {
		return storeSpec{}, errors.New("--etcd-cert and --etcd-key go together (the client certificate and its key)")
	}
	spec := storeSpec{kind: kind, tls: etcdTLSGiven, prefix: c.EtcdPrefix}
	if spec.prefix == "" {
		spec.prefix = etcdstore.DefaultPrefix
	}
	type endpoint struct {
		scheme, host, port string
	}
	var eps []endpoint
	for _, raw := range strings.Split(rest, ",") {
		raw = strings.TrimSpace(raw)
		if raw == "" {
			continue
		}
		e := endpoint{}
		hostport := raw
		if strings.Contains(raw, "://") {
			u, err := url.Parse(raw)
			if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || (u.Path != "" && u.Path != "/") || u.User != nil || u.RawQuery != "" {
				return storeSpec{}, fmt.Errorf("store %q: endpoint %q: want http://HOST:PORT, https://HOST:PORT or HOST:PORT", store, raw)
			}
			e.scheme, hostport = u.Scheme, u.Host
		}
		host, port, err := net.SplitHostPort(hostport)
		if err != nil {
			host, port = strings.TrimSuffix(strings.TrimPrefix(hostport, "["), "]"), defaultEtcdPort
		}
		if host == "" {
			return storeSpec{}, fmt.Errorf("store %q: endpoint %q has no host", store, raw)
		}
		e.host, e.port = host, port
		if e.scheme == "https" {
			spec.tls = true
		}
		eps = append(eps, e)
	}
	if len(eps) == 0 {
		return storeSpec{}, fmt.Errorf("store %q: no etcd endpoint", store)
	}
	scheme := "http"
	if spec.tls {
		scheme = "https"
	}
	for _, e := range eps {
		switch {
		case e.scheme == "http" && spec.tls:
			return storeSpec{}, fmt.Errorf("store %q: endpoint http://%s contradicts TLS to etcd (--etcd-ca/--etcd-cert or an https:// endpoint): use https:// for every endpoint", store, net.JoinHostPort(e.host, e.port))
		case !spec.tls && !server.IsLoopbackHost(e.host):
			return storeSpec{}, fmt.Errorf("refusing plaintext etcd to %s: only loopback endpoints may be reached without TLS; give --etcd-ca (and --etcd-cert with --etcd-key if the cluster requires client certificates) or https:// endpoints",
				net.JoinHostPort(e.host, e.port))
		}
		spec.endpoints = append(spec.endpoints, scheme+"://"+net.JoinHostPort(e.host, e.port))
	}
	return spec, nil
}

// etcdTLSConfig loads the client TLS settings for etcd: the CA that signed
// the cluster's certificates (the system roots without --etcd-ca) and the
// client certificate, if any.
func etcdTLSConfig(c Config) (*tls.Config, error) {
	cfg := &tls.Config{MinVersion: tls.VersionTLS12}
	if c.EtcdCA != "" {
		pem, err := os.ReadFile(c.EtcdCA)
		if err != nil {
			return nil, fmt.Errorf("--etcd-ca: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("--etcd-ca %s: no PEM certificate in it", c.EtcdCA)
		}
		cfg.RootCAs = pool
	}
	if c.EtcdCert != "" {
		cert, err := tls.LoadX509KeyPair(c.EtcdCert, c.EtcdKey)
		if err != nil {
			return nil, fmt.Errorf("--etcd-cert/--etcd-key: %w", err)
		}
		cfg.Certificates = []tls.Certificate{cert}
	}
	return cfg, nil
}

// openStore opens the configured store: the bbolt file (created if absent,
// schema migrated) or the etcd cluster.
func openStore(ctx context.Context, spec storeSpec, c Config, log *slog.Logger) (store.Store, error) {
	if spec.kind == "bbolt" {
		return boltstore.Open(ctx, spec.path, boltstore.Options{Logger: log, AcceptJournalLoss: c.AcceptJournalLoss})
	}
	return openEtcd(ctx, spec, c, log, false)
}

func openEtcd(ctx context.Context, spec storeSpec, c Config, log *slog.Logger, forImport bool) (*etcdstore.Store, error) {
	opts := etcdstore.Options{Endpoints: spec.endpoints, Prefix: spec.prefix, Logger: log, ForImport: forImport}
	if spec.tls {
		t, err := etcdTLSConfig(c)
		if err != nil {
			return nil, err
		}
		opts.TLS = t
	}
	return etcdstore.Open(ctx, opts)
}

// storeRedacted renders the etcd settings for `signerd config`.
func (c Config) storeRedacted() string {
	return fmt.Sprintf("etcd-cert = %s\netcd-key = %s\netcd-ca = %s\netcd-prefix = %s\n", c.EtcdCert, c.EtcdKey, c.EtcdCA, c.EtcdPrefix)
}
