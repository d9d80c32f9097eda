package daemon

import (
	"strings"
	"testing"
	"time"

	"github.com/spf13/pflag"
)

func TestLimitSettings(t *testing.T) {
	load := func(args []string, env map[string]string) (Config, error) {
		fs := pflag.NewFlagSet("t", pflag.ContinueOnError)
		registerFlags(fs)
		if err := fs.Parse(args); err != nil {
			t.Fatal(err)
		}
		return Load(fs, func(k string) string { return env[k] })
	}
	c, err := load(nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if c.MaxRecvMsgSize != 1<<20 || c.MaxConcurrentStreams != 128 || c.MaxConnections != 1024 ||
		c.HandshakeTimeout != 10*time.Second || c.KeepaliveMinTime != 10*time.Second ||
		c.MaxConnectionIdle != 15*time.Minute || c.HSMPingInterval != 5*time.Second {
		t.Fatalf("defaults: %+v", c)
	}
	c, err = load([]string{"--max-recv-msg-size", "64KiB", "--max-connections", "16", "--handshake-timeout", "1s", "--max-connection-idle", "0", "--hsm-ping-interval", "0"},
		map[string]string{"SIGNERD_MAX_CONCURRENT_STREAMS": "4", "SIGNERD_MAX_CONNECTIONS": "99", "SIGNERD_KEEPALIVE_MIN_TIME": "30s", "SIGNERD_MAX_RECV_MSG_SIZE": "2MiB"})
	if err != nil {
		t.Fatal(err)
	}
	if c.MaxRecvMsgSize != 64<<10 || c.MaxConcurrentStreams != 4 || c.MaxConnections != 16 || c.HandshakeTimeout != time.Second ||
		c.KeepaliveMinTime != 30*time.Second || c.MaxConnectionIdle != 0 || c.HSMPingInterval != 0 {
		t.Fatalf("flags and env: %+v", c)
	}
	for _, want := range []string{"max-recv-msg-size = 65536", "max-connections = 16", "hsm-ping-interval = 0s"} {
		if !strings.Contains(c.Redacted(), want) {
			t.Errorf("signerd config does not show %q:\n%s", want, c.Redacted())
		}
	}
	for _, args := range [][]string{
		{"--max-recv-msg-size", "1GiB"}, {"--max-recv-msg-size", "100"}, {"--max-recv-msg-size", "lots"},
		{"--max-concurrent-streams", "0"}, {"--max-connections", "-1"}, {"--max-connections", "x"},
		{"--handshake-timeout", "0"}, {"--handshake-timeout", "1ms"}, {"--keepalive-min-time", "soon"},
		{"--max-connection-idle", "10ms"}, {"--hsm-ping-interval", "-5s"},
	} {
		if _, err := load(args, nil); err == nil {
			t.Errorf("%v accepted", args)
		}
	}
}
