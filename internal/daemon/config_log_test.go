package daemon

import (
	"os"
	"strings"
	"testing"

	"github.com/spf13/pflag"
)

func TestLogOrigin(t *testing.T) {
	host, err := os.Hostname()
	if err != nil {
		t.Fatal(err)
	}
	if o := Defaults().LogOrigin; o != "signerd."+host+"/log" {
		t.Fatalf("default log-origin %q, want signerd.%s/log", o, host)
	}
	for _, tt := range []struct {
		flag, env string
		want      string
		wantErr   bool
	}{
		{env: "signerd.example.com/log", want: "signerd.example.com/log"},
		{flag: "example.org/signing-log", env: "other/log", want: "example.org/signing-log"},
		{flag: "has space/log", wantErr: true},
		{flag: "plus+sign/log", wantErr: true},
		{env: "tab\tlog", wantErr: true},
	} {
		fs := pflag.NewFlagSet("t", pflag.ContinueOnError)
		registerFlags(fs)
		var args []string
		if tt.flag != "" {
			args = []string{"--log-origin", tt.flag}
		}
		if err := fs.Parse(args); err != nil {
			t.Fatal(err)
		}
		env := map[string]string{"SIGNERD_LOG_ORIGIN": tt.env}
		c, err := Load(fs, func(k string) string { return env[k] })
		switch {
		case tt.wantErr && err == nil:
			t.Errorf("flag %q env %q: accepted as %q", tt.flag, tt.env, c.LogOrigin)
		case tt.wantErr && !strings.Contains(err.Error(), "log-origin"):
			t.Errorf("flag %q env %q: error %v does not name log-origin", tt.flag, tt.env, err)
		case !tt.wantErr && (err != nil || c.LogOrigin != tt.want):
			t.Errorf("flag %q env %q: %q, %v; want %q", tt.flag, tt.env, c.LogOrigin, err, tt.want)
		case !tt.wantErr && !strings.Contains(c.Redacted(), "log-origin = "+tt.want+"\n"):
			t.Errorf("Redacted does not show the origin:\n%s", c.Redacted())
		}
	}
}
