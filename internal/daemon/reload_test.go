package daemon

import (
	"strings"
	"testing"
)

// TestRestartOnly: a reload names the changed settings it does not apply,
// and only those.
func TestRestartOnly(t *testing.T) {
	base := Defaults()
	base.Listen, base.TLSCert, base.TLSKey, base.ClientCA = "127.0.0.1:7443", "a.crt", "a.key", "ca.pem"
	tests := []struct {
		name string
		edit func(*Config)
		tls  bool
		want string
	}{
		{"nothing", func(*Config) {}, true, ""},
		{"reloadable only", func(c *Config) { c.LogLevel, c.Policy, c.TLSCert, c.ClientCA = "debug", "p.json", "b.crt", "ca2.pem" }, true, ""},
		{"TLS files without a TLS listener", func(c *Config) { c.TLSCert = "b.crt" }, false, "tls-cert"},
		{"socket and store", func(c *Config) { c.Socket, c.Store = "/tmp/x.sock", "bbolt:/tmp/x.db" }, true, "store,socket"},
		{"listen", func(c *Config) { c.Listen = "127.0.0.1:7444" }, true, "listen"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			next := base
			tt.edit(&next)
			if got := strings.Join(restartOnly(base, next, tt.tls), ","); got != tt.want {
				t.Fatalf("restartOnly = %q, want %q", got, tt.want)
			}
		})
	}
}
