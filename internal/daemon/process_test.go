package daemon

import (
	"strings"
	"testing"
)

// The connection caps of every listener, metrics included, must fit under
// the descriptor limit with room for the rest; a configuration that does
// not is refused at start with what to change.
func TestCheckFileBudget(t *testing.T) {
	withTCP := Defaults()
	withTCP.Listen = "127.0.0.1:7443"
	withMetrics := Defaults()
	withMetrics.MetricsListen = "127.0.0.1:9464"
	small := Defaults()
	small.MaxConnections = 256
	small.MetricsListen = "127.0.0.1:9464"
	for _, tc := range []struct {
		name    string
		cfg     Config
		limit   uint64
		wantErr string
	}{
		{"defaults, socket only", Defaults(), 1024 + reservedFiles, ""},
		{"defaults under a 1024 limit", Defaults(), 1024, "need 1152 file descriptors"},
		{"socket and TCP", withTCP, 2048 + reservedFiles, ""},
		{"socket and TCP, one short", withTCP, 2048 + reservedFiles - 1, "× 2 listener(s)"},
		{"metrics count", withMetrics, 1024 + reservedFiles, "--metrics-max-connections 16"},
		{"metrics fit", withMetrics, 1024 + 16 + reservedFiles, ""},
		{"lowered caps fit a small limit", small, 512, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := checkFileBudget(tc.cfg, tc.limit)
			switch {
			case tc.wantErr == "" && err != nil:
				t.Fatalf("refused: %v", err)
			case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
				t.Fatalf("error %v, want one containing %q", err, tc.wantErr)
			}
		})
	}
}
