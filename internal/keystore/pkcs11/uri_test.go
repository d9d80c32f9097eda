package pkcs11_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/signerd/signerd/internal/errdefs"
	"github.com/signerd/signerd/internal/keystore/pkcs11"
)

func TestParseURI(t *testing.T) {
	tests := []struct {
		in      string
		want    pkcs11.URI
		wantErr string // in the error; "" means success
	}{
		{in: "pkcs11:token=signerd", want: pkcs11.URI{Token: "signerd"}},
		{in: "pkcs11:token=signerd;serial=facfcfec843182d7?module-path=/usr/lib/softhsm/libsofthsm2.so&pin-source=file:/etc/signerd/pin",
			want: pkcs11.URI{Token: "signerd", Serial: "facfcfec843182d7", ModulePath: "/usr/lib/softhsm/libsofthsm2.so", PINFile: "/etc/signerd/pin"}},
		{in: "pkcs11:serial=0123;model=SoftHSM%20v2;manufacturer=SoftHSM%20project",
			want: pkcs11.URI{Serial: "0123", Model: "SoftHSM v2", Manufacturer: "SoftHSM project"}},
		{in: "pkcs11:token=my%20token%3bx?pin-source=file:///run/pin", want: pkcs11.URI{Token: "my token;x", PINFile: "/run/pin"}},
		{in: "pkcs11:TOKEN=a?pin-source=/abs/pin", want: pkcs11.URI{Token: "a", PINFile: "/abs/pin"}},
		{in: "pkcs11:token=a=b", want: pkcs11.URI{Token: "a=b"}},

		{in: "", wantErr: `must start with "pkcs11:"`},
		{in: "pkcs12:token=a", wantErr: `must start with "pkcs11:"`},
		{in: "pkcs11:", wantErr: "choose the token with token= or serial="},
		{in: "pkcs11:model=x", wantErr: "choose the token with token= or serial="},
		{in: "pkcs11:token=a;token=b", wantErr: `"token" given twice`},
		{in: "pkcs11:token=a%zz", wantErr: "bad percent-encoding"},
		{in: "pkcs11:token=", wantErr: `"token" is empty`},
		{in: "pkcs11:token", wantErr: "has no value"},
		{in: "pkcs11:token=a;colour=blue", wantErr: `unknown path (before ?) attribute "colour"`},
		{in: "pkcs11:token=a?colour=blue", wantErr: `unknown query (after ?) attribute "colour"`},
		{in: "pkcs11:token=a?serial=1", wantErr: `unknown query (after ?) attribute "serial"`},
		{in: "pkcs11:token=a;module-path=/x.so", wantErr: `unknown path (before ?) attribute "module-path"`},
		{in: "pkcs11:token=a;object=key1", wantErr: `"object" names an object`},
		{in: "pkcs11:token=a;slot-id=3", wantErr: `"slot-id" chooses a slot`},
		{in: "pkcs11:token=a?pin-value=123456", wantErr: `"pin-value" would put the PIN on the command line`},
		{in: "pkcs11:token=a?module-name=softhsm2", wantErr: `"module-name" is not supported`},
		{in: "pkcs11:token=a?module-path=libsofthsm2.so", wantErr: "module-path must be an absolute path"},
		{in: "pkcs11:token=a?pin-source=pin.txt", wantErr: "pin-source must name an absolute path"},
		{in: "pkcs11:token=a?pin-source=https://example.com/pin", wantErr: "pin-source must be a file: URI or an absolute path"},
		{in: "pkcs11:token=a#frag", wantErr: "a fragment"},
		{in: "pkcs11:token=" + strings.Repeat("a", 5000), wantErr: "longer than 4096 bytes"},
		// Within the bound as written, three times over it as String()
		// writes it (found by FuzzParseURI).
		{in: "pkcs11:token=b" + strings.Repeat("\xde", 1400), wantErr: "longer than 4096 bytes once percent-encoded"},
	}
	for _, tt := range tests {
		t.Run(tt.in[:min(len(tt.in), 60)], func(t *testing.T) {
			got, err := pkcs11.ParseURI(tt.in)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("ParseURI: %v", err)
				}
				if got != tt.want {
					t.Fatalf("ParseURI = %+v, want %+v", got, tt.want)
				}
				back, err := pkcs11.ParseURI(got.String())
				if err != nil || back != got {
					t.Fatalf("String() = %q reads back as %+v, %v", got.String(), back, err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) || !errors.Is(err, errdefs.ErrInvalidArgument) {
				t.Fatalf("ParseURI: %v, want ErrInvalidArgument containing %q", err, tt.wantErr)
			}
			if strings.Contains(err.Error(), "123456") {
				t.Fatalf("error repeats the PIN: %v", err)
			}
		})
	}
}

// FuzzParseURI: no input panics; what parses chooses a token, has absolute
// paths, and formats back to itself; what does not is ErrInvalidArgument.
func FuzzParseURI(f *testing.F) {
	for _, s := range []string{
		"pkcs11:token=signerd;serial=1?module-path=/usr/lib/softhsm/libsofthsm2.so&pin-source=file:/etc/pin",
		"pkcs11:token=a%20b;model=m;manufacturer=x",
		"pkcs11:serial=%00%ff",
		"pkcs11:token=a?pin-value=1",
		"pkcs11:token=a;token=b",
		"pkcs11:?",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		u, err := pkcs11.ParseURI(s)
		if err != nil {
			if !errors.Is(err, errdefs.ErrInvalidArgument) {
				t.Fatalf("error without a kind: %v", err)
			}
			return
		}
		if u.Token == "" && u.Serial == "" {
			t.Fatalf("%q parsed without token or serial: %+v", s, u)
		}
		for _, p := range []string{u.ModulePath, u.PINFile} {
			if p != "" && !strings.HasPrefix(p, "/") {
				t.Fatalf("%q: relative path %q", s, p)
			}
		}
		back, err := pkcs11.ParseURI(u.String())
		if err != nil || back != u {
			t.Fatalf("%q: String() = %q reads back as %+v, %v; want %+v", s, u.String(), back, err, u)
		}
	})
}
