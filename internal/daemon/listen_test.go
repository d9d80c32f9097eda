package daemon

import (
	"strings"
	"testing"

	"github.com/spf13/pflag"
)

func TestCheckListen(t *testing.T) {
	tlsCfg := func(listen string) Config {
		return Config{Listen: listen, TLSCert: "s.crt", TLSKey: "s.key", ClientCA: "ca.pem"}
	}
	tests := []struct {
		name string
		cfg  Config
		want string // "" for accepted
	}{
		{"no TCP", Config{}, ""},
		{"mutual TLS on every interface", tlsCfg("0.0.0.0:7443"), ""},
		{"mutual TLS on loopback", tlsCfg("127.0.0.1:7443"), ""},
		{"plaintext loopback with the flag", Config{Listen: "127.0.0.1:7443", InsecureLoopback: true}, ""},
		{"plaintext [::1] with the flag", Config{Listen: "[::1]:7443", InsecureLoopback: true}, ""},
		{"plaintext localhost with the flag", Config{Listen: "localhost:7443", InsecureLoopback: true}, ""},
		{"plaintext loopback without the flag", Config{Listen: "127.0.0.1:7443"}, "needs --insecure-loopback"},
		{"plaintext on every interface", Config{Listen: "0.0.0.0:7443", InsecureLoopback: true}, "refusing plaintext TCP on 0.0.0.0:7443"},
		{"plaintext, empty host", Config{Listen: ":7443", InsecureLoopback: true}, "refusing plaintext TCP"},
		{"plaintext on a LAN address", Config{Listen: "192.168.1.5:7443"}, "refusing plaintext TCP"},
		{"TLS without client CA", Config{Listen: "0.0.0.0:7443", TLSCert: "s.crt", TLSKey: "s.key"}, "refusing a TLS listener on 0.0.0.0:7443 without --client-ca"},
		{"TLS without key", Config{Listen: "0.0.0.0:7443", TLSCert: "s.crt", ClientCA: "ca.pem"}, "needs [--tls-key]"},
		{"client CA alone", Config{Listen: "0.0.0.0:7443", ClientCA: "ca.pem"}, "needs [--tls-cert --tls-key]"},
		{"TLS and insecure-loopback", func() Config { c := tlsCfg("127.0.0.1:7443"); c.InsecureLoopback = true; return c }(), "contradicts"},
		{"TLS flags without listen", Config{TLSCert: "s.crt"}, "no --listen"},
		{"insecure-loopback without listen", Config{InsecureLoopback: true}, "--insecure-loopback applies to --listen"},
		{"no port", Config{Listen: "127.0.0.1", InsecureLoopback: true}, "want HOST:PORT"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := checkListen(tt.cfg)
			if tt.want == "" {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("checkListen: %v; want an error containing %q", err, tt.want)
			}
		})
	}
}

func TestListenSettings(t *testing.T) {
	env := map[string]string{"SIGNERD_LISTEN": "127.0.0.1:7443", "SIGNERD_POLICY": "/etc/signerd/policy.json", "SIGNERD_CLIENT_CA": "/env/ca.pem"}
	fs := pflag.NewFlagSet("t", pflag.ContinueOnError)
	registerFlags(fs)
	if err := fs.Parse([]string{"--insecure-loopback", "--tls-cert", "/flag/s.crt", "--tls-key", "/flag/s.key"}); err != nil {
		t.Fatal(err)
	}
	c, err := Load(fs, func(k string) string { return env[k] })
	if err != nil {
		t.Fatal(err)
	}
	if c.Listen != "127.0.0.1:7443" || c.Policy != "/etc/signerd/policy.json" || c.ClientCA != "/env/ca.pem" ||
		c.TLSCert != "/flag/s.crt" || c.TLSKey != "/flag/s.key" || !c.InsecureLoopback {
		t.Fatalf("config: %+v", c)
	}
	for _, want := range []string{"listen = 127.0.0.1:7443", "policy = /etc/signerd/policy.json", "insecure-loopback = true", "client-ca = /env/ca.pem"} {
		if !strings.Contains(c.Redacted(), want) {
			t.Errorf("Redacted lacks %q", want)
		}
	}

	fs = pflag.NewFlagSet("t", pflag.ContinueOnError)
	registerFlags(fs)
	fs.Parse([]string{"--insecure-loopback=maybe"})
	if _, err := Load(fs, func(string) string { return "" }); err == nil || !strings.Contains(err.Error(), "insecure-loopback") {
		t.Fatalf("bad bool: %v", err)
	}
}
