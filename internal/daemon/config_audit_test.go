package daemon

import (
	"strings"
	"testing"
	"time"

	"github.com/spf13/pflag"
)

func TestAuditCheckpointInterval(t *testing.T) {
	if d := Defaults().AuditCheckpointInterval; d != time.Minute {
		t.Fatalf("default audit-checkpoint-interval %v, want 1m", d)
	}
	for _, tt := range []struct {
		flag, env string
		want      time.Duration
		wantErr   bool
	}{
		{env: "5m", want: 5 * time.Minute},
		{flag: "10s", env: "5m", want: 10 * time.Second},
		{flag: "0", want: 0},
		{flag: "500ms", wantErr: true},
		{flag: "-1s", wantErr: true},
		{env: "soon", wantErr: true},
	} {
		fs := pflag.NewFlagSet("t", pflag.ContinueOnError)
		registerFlags(fs)
		var args []string
		if tt.flag != "" {
			args = []string{"--audit-checkpoint-interval", tt.flag}
		}
		if err := fs.Parse(args); err != nil {
			t.Fatal(err)
		}
		env := map[string]string{"SIGNERD_AUDIT_CHECKPOINT_INTERVAL": tt.env}
		c, err := Load(fs, func(k string) string { return env[k] })
		switch {
		case tt.wantErr && err == nil:
			t.Errorf("flag %q env %q: accepted", tt.flag, tt.env)
		case !tt.wantErr && (err != nil || c.AuditCheckpointInterval != tt.want):
			t.Errorf("flag %q env %q: %v, %v; want %v", tt.flag, tt.env, c.AuditCheckpointInterval, err, tt.want)
		case !tt.wantErr && !strings.Contains(c.Redacted(), "audit-checkpoint-interval = "+tt.want.String()):
			t.Errorf("Redacted does not show the interval:\n%s", c.Redacted())
		}
	}
}
