package daemon

import (
	"net"
	"path/filepath"
	"strings"
	"testing"
)

func TestSameTCPAddr(t *testing.T) {
	tests := []struct {
		listen string
		ip     string
		port   int
		want   bool
	}{
		{"127.0.0.1:7443", "127.0.0.1", 7443, true},
		{"127.0.0.1:7443", "127.0.0.1", 7444, false},
		{"127.0.0.1:7443", "127.0.0.2", 7443, false},
		{"localhost:7443", "::1", 7443, true},
		{"localhost:7443", "192.0.2.1", 7443, false},
		{":7443", "::", 7443, true},
		{"0.0.0.0:7443", "0.0.0.0", 7443, true},
		{"0.0.0.0:7443", "192.0.2.1", 7443, false},
		{"[::1]:7443", "::1", 7443, true},
		{"192.0.2.1:7443", "0.0.0.0", 7443, false},
		{"127.0.0.1:0", "127.0.0.1", 0, true},
		{"127.0.0.1", "127.0.0.1", 7443, false},
		{"127.0.0.1:https", "127.0.0.1", 443, false},
	}
	for _, tt := range tests {
		got := sameTCPAddr(tt.listen, &net.TCPAddr{IP: net.ParseIP(tt.ip), Port: tt.port})
		if got != tt.want {
			t.Errorf("sameTCPAddr(%q, %s:%d) = %v, want %v", tt.listen, tt.ip, tt.port, got, tt.want)
		}
	}
}

// TestPassedListenerMatching: each passed socket must be the configured
// one; anything else is refused, naming both addresses.
func TestPassedListenerMatching(t *testing.T) {
	dir := t.TempDir()
	unixL := func(name string) net.Listener {
		l, err := net.Listen("unix", filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { l.Close() })
		return l
	}
	tcpL := func() net.Listener {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { l.Close() })
		return l
	}
	sock := filepath.Join(dir, "signerd.sock")
	a, b, tcp := unixL("signerd.sock"), unixL("other.sock"), tcpL()
	tcpAddr := tcp.Addr().String()
	tests := []struct {
		name    string
		cfg     Config
		ls      []net.Listener
		wantErr string
	}{
		{"unix", Config{Socket: sock}, []net.Listener{a}, ""},
		{"unix and tcp", Config{Socket: sock, Listen: tcpAddr}, []net.Listener{a, tcp}, ""},
		{"another unix path", Config{Socket: sock}, []net.Listener{b}, "other.sock"},
		{"unix twice", Config{Socket: sock}, []net.Listener{a, a}, "passed twice"},
		{"tcp without listen", Config{Socket: sock}, []net.Listener{tcp}, "no listen setting"},
		{"tcp at another address", Config{Socket: sock, Listen: "127.0.0.1:1"}, []net.Listener{tcp}, "127.0.0.1:1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var p passed
			var err error
			for _, l := range tt.ls {
				if err = p.take(tt.cfg, "fd", l); err != nil {
					break
				}
			}
			switch {
			case tt.wantErr == "" && err != nil:
				t.Fatalf("take: %v", err)
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Fatalf("take: %v, want an error mentioning %q", err, tt.wantErr)
			case tt.wantErr == "" && (p.unix == nil || (tt.cfg.Listen != "") != (p.tcp != nil)):
				t.Fatalf("passed %+v", p)
			}
		})
	}
}
