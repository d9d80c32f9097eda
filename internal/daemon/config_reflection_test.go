package daemon

import (
	"strings"
	"testing"

	"github.com/spf13/pflag"
)

// TestReflectionSetting: reflection is on unless the flag, the environment
// or the config file turns it off, and `signerd config` says which.
func TestReflectionSetting(t *testing.T) {
	tests := []struct {
		name    string
		args    []string
		env     map[string]string
		want    bool
		wantErr bool
	}{
		{name: "default", want: true},
		{name: "flag off", args: []string{"--reflection=false"}, want: false},
		{name: "bare flag", args: []string{"--reflection"}, env: map[string]string{"SIGNERD_REFLECTION": "false"}, want: true},
		{name: "env off", env: map[string]string{"SIGNERD_REFLECTION": "false"}, want: false},
		{name: "flag beats env", args: []string{"--reflection=true"}, env: map[string]string{"SIGNERD_REFLECTION": "0"}, want: true},
		{name: "not a bool", args: []string{"--reflection=maybe"}, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fs := pflag.NewFlagSet("t", pflag.ContinueOnError)
			registerFlags(fs)
			if err := fs.Parse(tt.args); err != nil {
				t.Fatal(err)
			}
			c, err := Load(fs, func(k string) string { return tt.env[k] })
			if (err != nil) != tt.wantErr {
				t.Fatalf("Load: %v, want error %t", err, tt.wantErr)
			}
			if tt.wantErr {
				return
			}
			if c.Reflection != tt.want {
				t.Fatalf("Reflection = %t, want %t", c.Reflection, tt.want)
			}
			if want := "reflection = " + map[bool]string{true: "true", false: "false"}[tt.want]; !strings.Contains(c.Redacted(), want+"\n") {
				t.Errorf("signerd config does not show %q:\n%s", want, c.Redacted())
			}
		})
	}
}
