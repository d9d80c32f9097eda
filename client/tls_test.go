package client

import (
	"errors"
	"path/filepath"
	"testing"

	"github.com/signerd/signerd/internal/errdefs"
	"github.com/signerd/signerd/internal/testutil/certs"
)

func TestDialTCPRefusals(t *testing.T) {
	dir := t.TempDir()
	ca := certs.NewCA(t, "ca")
	caFile := ca.WriteFile(t, dir, "ca.pem")
	cl := ca.Issue(t, certs.Leaf{CN: "c"}).WriteFiles(t, dir, "c")
	tests := []struct {
		name string
		dial func() (*Client, error)
	}{
		{"plaintext to a remote host", func() (*Client, error) { return DialLoopback("10.1.2.3:7443") }},
		{"plaintext to every interface", func() (*Client, error) { return DialLoopback("0.0.0.0:7443") }},
		{"no port", func() (*Client, error) { return DialLoopback("127.0.0.1") }},
		{"TLS without a key", func() (*Client, error) { return DialTLS("127.0.0.1:7443", cl.Cert, "", caFile) }},
		{"TLS without a CA", func() (*Client, error) { return DialTLS("127.0.0.1:7443", cl.Cert, cl.Key, "") }},
		{"TLS with a missing certificate", func() (*Client, error) {
			return DialTLS("127.0.0.1:7443", filepath.Join(dir, "missing.crt"), cl.Key, caFile)
		}},
		{"TLS with a CA file holding no certificate", func() (*Client, error) { return DialTLS("127.0.0.1:7443", cl.Cert, cl.Key, cl.Key) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := tt.dial()
			if err == nil {
				c.Close()
				t.Fatal("dialled")
			}
			if !errors.Is(err, errdefs.ErrInvalidArgument) {
				t.Fatalf("%v is not ErrInvalidArgument (signctl exit 2)", err)
			}
		})
	}
	for _, addr := range []string{"127.0.0.1:7443", "[::1]:7443", "localhost:7443"} {
		c, err := DialLoopback(addr)
		if err != nil {
			t.Fatalf("DialLoopback(%s): %v", addr, err)
		}
		c.Close()
	}
	c, err := DialTLS("localhost:7443", cl.Cert, cl.Key, caFile)
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
}
