package client_test

import (
	"errors"
	"testing"

	"github.com/signerd/signerd/client"
)

// TestDialAddresses: Dial picks the transport from the address as signctl
// does, and refuses plaintext beyond loopback.
func TestDialAddresses(t *testing.T) {
	t.Setenv(client.SocketEnv, "/from/env.sock")
	tests := []struct {
		name, address string
		opts          []client.Option
		want          string // Address() of the client
		wantErr       error
	}{
		{name: "empty: $SIGNCTL_SOCKET", address: "", want: "/from/env.sock"},
		{name: "socket path", address: "/run/signerd/signerd.sock", want: "/run/signerd/signerd.sock"},
		{name: "relative socket path", address: "var/signerd.sock", want: "var/signerd.sock"},
		{name: "unix: prefix", address: "unix:/tmp/s.sock", want: "/tmp/s.sock"},
		{name: "socket name with a colon", address: "signerd:main.sock", want: "signerd:main.sock"},
		{name: "loopback plaintext", address: "127.0.0.1:7000", want: "127.0.0.1:7000"},
		{name: "plaintext beyond loopback", address: "signer.example.com:7000", wantErr: client.ErrInvalidArgument},
		{name: "mutual TLS without files", address: "signer.example.com:7000", opts: []client.Option{client.WithMutualTLS("", "", "/ca.pem")}, wantErr: client.ErrInvalidArgument},
		{name: "mutual TLS, unreadable files", address: "signer.example.com:7000", opts: []client.Option{client.WithMutualTLS("/no/cert.pem", "/no/key.pem", "/no/ca.pem")}, wantErr: client.ErrInvalidArgument},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := client.Dial(tt.address, tt.opts...)
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("Dial(%q) = %v, want %v", tt.address, err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			if c.Address() != tt.want {
				t.Fatalf("Dial(%q) dialled %q, want %q", tt.address, c.Address(), tt.want)
			}
		})
	}
}
