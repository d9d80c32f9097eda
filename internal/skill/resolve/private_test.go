package resolve

import (
	"errors"
	"strings"
	"testing"
)

// refusePrivate refuses every non-public kind of address, IPv4-mapped
// IPv6 forms included, and lets public ones through; called directly, so
// that no test sends a packet to a private network.
func TestRefusePrivate(t *testing.T) {
	for _, tc := range []struct {
		addr string
		kind string // "" for allowed
	}{
		{"127.0.0.1:443", "loopback"},
		{"127.1.2.3:443", "loopback"},
		{"[::1]:443", "loopback"},
		{"[::ffff:127.0.0.1]:443", "loopback"},
		{"10.1.2.3:443", "private"},
		{"172.16.0.1:443", "private"},
		{"192.168.1.1:443", "private"},
		{"[fd00::1]:443", "private"},
		{"[::ffff:192.168.1.1]:443", "private"},
		{"169.254.169.254:80", "link-local"},
		{"[fe80::1%eth0]:443", "link-local"},
		{"0.0.0.0:443", "unspecified"},
		{"[::]:443", "unspecified"},
		{"100.64.0.1:443", "shared (carrier-grade NAT)"},
		{"8.8.8.8:443", ""},
		{"[2001:4860:4860::8888]:443", ""},
		{"100.128.0.1:443", ""},
		{"not-an-address", "cannot tell"},
	} {
		err := refusePrivate("tcp4", tc.addr, nil)
		switch {
		case tc.kind == "" && err != nil:
			t.Errorf("%s refused: %v", tc.addr, err)
		case tc.kind != "" && (!errors.Is(err, ErrPrivateAddress) || !strings.Contains(err.Error(), tc.kind)):
			t.Errorf("%s: %v, want ErrPrivateAddress naming %q", tc.addr, err, tc.kind)
		}
	}
}
