package daemon

import (
	"strings"
	"testing"

	"github.com/spf13/pflag"
)

// TestRedactedShowsEverySetting: `signerd config` has one line for every
// setting in the settings table (a setting added without one fails here),
// names where the PIN comes from only when it comes from somewhere, and
// shows set values.
func TestRedactedShowsEverySetting(t *testing.T) {
	r := Defaults().Redacted()
	for _, s := range settings() {
		name := s.name
		if alias, ok := redactedAliases[name]; ok {
			name = alias
		}
		if n := strings.Count("\n"+r, "\n"+name+" = "); n != 1 {
			t.Errorf("signerd config has %d lines for setting %q, want 1:\n%s", n, s.name, r)
		}
	}

	tests := []struct {
		name string
		args []string
		env  map[string]string
		want []string
		not  []string
	}{
		{"no PIN source", nil, nil,
			[]string{"pin-file = \n", "pin = (none: give --pin-file or SIGNERD_PIN)\n", "metrics-listen = \n", "metrics-pprof = false\n"},
			[]string{"(from pin-file)"}},
		{"pin file", []string{"--pin-file", "/etc/signerd/pin"}, nil,
			[]string{"pin-file = /etc/signerd/pin\n", "pin = (from pin-file)\n"}, nil},
		{"PIN from the environment", nil, map[string]string{"SIGNERD_PIN": "98765"},
			[]string{"pin = (from SIGNERD_PIN, redacted)\n"}, []string{"98765"}},
		{"metrics", []string{"--metrics-listen", "127.0.0.1:9464", "--metrics-pprof"}, nil,
			[]string{"metrics-listen = 127.0.0.1:9464\n", "metrics-pprof = true\n"}, nil},
		{"in-flight bytes per peer", []string{"--max-inflight-bytes-per-peer", "2MiB"}, nil,
			[]string{"max-inflight-bytes-per-peer = 2097152\n"}, nil},
		{"PKCS#11 URI", []string{"--pkcs11-uri", "pkcs11:token=signerd?module-path=/usr/lib/softhsm/libsofthsm2.so&pin-source=file:/etc/signerd/pin"}, nil,
			[]string{"pkcs11-uri = pkcs11:token=signerd?module-path=/usr/lib/softhsm/libsofthsm2.so&pin-source=file:/etc/signerd/pin\n", "pin = (from pin-file)\n"}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fs := pflag.NewFlagSet("t", pflag.ContinueOnError)
			registerFlags(fs)
			if err := fs.Parse(tt.args); err != nil {
				t.Fatal(err)
			}
			c, err := Load(fs, func(k string) string { return tt.env[k] })
			if err != nil {
				t.Fatal(err)
			}
			r := c.Redacted()
			for _, w := range tt.want {
				if !strings.Contains(r, w) {
					t.Errorf("signerd config lacks %q:\n%s", w, r)
				}
			}
			for _, n := range tt.not {
				if strings.Contains(r, n) {
					t.Errorf("signerd config shows %q:\n%s", n, r)
				}
			}
		})
	}
}
