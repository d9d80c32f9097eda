package daemon

import (
	"reflect"
	"strings"
	"testing"

	"github.com/spf13/pflag"
)

func TestParseStore(t *testing.T) {
	withTLS := Defaults()
	withTLS.EtcdCA = "/ca.pem"
	withCert := withTLS
	withCert.EtcdCert, withCert.EtcdKey = "/c.pem", "/k.pem"
	certOnly := Defaults()
	certOnly.EtcdCert = "/c.pem"
	for _, tt := range []struct {
		name, store string
		cfg         Config
		want        []string // endpoints; nil: an error
		tls         bool
		errHas      string
	}{
		{name: "bbolt", store: "bbolt:/x.db", cfg: Defaults(), want: []string{}},
		{name: "loopback plaintext", store: "etcd:127.0.0.1:2379,http://[::1]:2380,localhost", cfg: Defaults(),
			want: []string{"http://127.0.0.1:2379", "http://[::1]:2380", "http://localhost:2379"}},
		{name: "remote plaintext refused", store: "etcd:10.0.0.5:2379", cfg: Defaults(), errHas: "refusing plaintext etcd"},
		{name: "remote with a CA", store: "etcd:etcd-1:2379,etcd-2", cfg: withTLS,
			want: []string{"https://etcd-1:2379", "https://etcd-2:2379"}, tls: true},
		{name: "https endpoint alone", store: "etcd:https://etcd-1:2379", cfg: Defaults(), want: []string{"https://etcd-1:2379"}, tls: true},
		{name: "client certificate", store: "etcd:https://etcd-1:2379", cfg: withCert, want: []string{"https://etcd-1:2379"}, tls: true},
		{name: "http with TLS settings", store: "etcd:http://etcd-1:2379", cfg: withTLS, errHas: "contradicts TLS"},
		{name: "mixed schemes", store: "etcd:https://a:1,http://127.0.0.1:2", cfg: Defaults(), errHas: "contradicts TLS"},
		{name: "certificate without key", store: "etcd:https://a:1", cfg: certOnly, errHas: "go together"},
		{name: "TLS settings for bbolt", store: "bbolt:/x.db", cfg: withTLS, errHas: "but the store is bbolt"},
		{name: "no endpoint", store: "etcd:,", cfg: Defaults(), errHas: "no etcd endpoint"},
		{name: "path in endpoint", store: "etcd:http://127.0.0.1:2379/v3", cfg: Defaults(), errHas: "want http://"},
		{name: "unknown backend", store: "sqlite:/a", cfg: Defaults(), errHas: "unknown backend"},
		{name: "empty", store: "etcd:", cfg: Defaults(), errHas: "want bbolt:FILE"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			spec, err := parseStore(tt.store, tt.cfg)
			if tt.errHas != "" {
				if err == nil || !strings.Contains(err.Error(), tt.errHas) {
					t.Fatalf("parseStore(%q) = %v, want an error with %q", tt.store, err, tt.errHas)
				}
				return
			}
			if err != nil {
				t.Fatalf("parseStore(%q): %v", tt.store, err)
			}
			if spec.kind == "etcd" && (!reflect.DeepEqual(spec.endpoints, tt.want) || spec.tls != tt.tls || spec.prefix != "/signerd/") {
				t.Fatalf("parseStore(%q) = %+v, want endpoints %v tls %v", tt.store, spec, tt.want, tt.tls)
			}
		})
	}
}

func TestEtcdSettings(t *testing.T) {
	fs := pflag.NewFlagSet("t", pflag.ContinueOnError)
	registerFlags(fs)
	if err := fs.Parse([]string{"--store", "etcd:https://e1:2379", "--etcd-cert", "/flag.crt"}); err != nil {
		t.Fatal(err)
	}
	env := map[string]string{"SIGNERD_ETCD_CERT": "/env.crt", "SIGNERD_ETCD_KEY": "/env.key", "SIGNERD_ETCD_CA": "/env-ca.pem", "SIGNERD_ETCD_PREFIX": "/prod/"}
	c, err := Load(fs, func(k string) string { return env[k] })
	if err != nil {
		t.Fatal(err)
	}
	if c.Store != "etcd:https://e1:2379" || c.EtcdCert != "/flag.crt" || c.EtcdKey != "/env.key" || c.EtcdCA != "/env-ca.pem" || c.EtcdPrefix != "/prod/" {
		t.Fatalf("etcd settings: %+v", c)
	}
	if _, err := c.DBPath(); err == nil {
		t.Fatal("DBPath of an etcd store should be an error")
	}
	if r := c.Redacted(); !strings.Contains(r, "etcd-ca = /env-ca.pem") || !strings.Contains(r, "etcd-prefix = /prod/") {
		t.Fatalf("Redacted lacks the etcd settings:\n%s", r)
	}
}
