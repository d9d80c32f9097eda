//go:build cgo

package pkcs11

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	p11 "github.com/miekg/pkcs11"

	"github.com/signerd/signerd/internal/errdefs"
)

func TestToKind(t *testing.T) {
	tests := []struct {
		name       string
		err        error
		wantClass  errClass
		wantKind   error
		wantReason errdefs.Reason
	}{
		{"device error", p11.Error(p11.CKR_DEVICE_ERROR), classDevice, errdefs.ErrUnavailable, errdefs.ReasonHSMUnavailable},
		{"device removed", p11.Error(p11.CKR_DEVICE_REMOVED), classDevice, errdefs.ErrUnavailable, errdefs.ReasonHSMUnavailable},
		{"token not present", p11.Error(p11.CKR_TOKEN_NOT_PRESENT), classDevice, errdefs.ErrUnavailable, errdefs.ReasonHSMUnavailable},
		{"not initialised", p11.Error(p11.CKR_CRYPTOKI_NOT_INITIALIZED), classDevice, errdefs.ErrUnavailable, errdefs.ReasonHSMUnavailable},
		{"session, unrepaired", p11.Error(p11.CKR_SESSION_HANDLE_INVALID), classSession, errdefs.ErrUnavailable, errdefs.ReasonHSMUnavailable},
		{"session closed, unrepaired", p11.Error(p11.CKR_SESSION_CLOSED), classSession, errdefs.ErrUnavailable, errdefs.ReasonHSMUnavailable},
		{"login, unrepaired", p11.Error(p11.CKR_USER_NOT_LOGGED_IN), classLogin, errdefs.ErrUnavailable, errdefs.ReasonHSMUnavailable},
		{"handle, unrepaired", p11.Error(p11.CKR_KEY_HANDLE_INVALID), classHandle, errdefs.ErrUnavailable, errdefs.ReasonHSMUnavailable},
		{"wrapped handle", fmt.Errorf("crypto11: %w", p11.Error(p11.CKR_OBJECT_HANDLE_INVALID)), classHandle, errdefs.ErrUnavailable, errdefs.ReasonHSMUnavailable},
		{"PIN incorrect", p11.Error(p11.CKR_PIN_INCORRECT), classPIN, errdefs.ErrPermissionDenied, ""},
		{"PIN locked", p11.Error(p11.CKR_PIN_LOCKED), classPIN, errdefs.ErrPermissionDenied, ""},
		{"mechanism", p11.Error(p11.CKR_MECHANISM_INVALID), classOther, errdefs.ErrFailedPrecondition, ""},
		{"template", p11.Error(p11.CKR_TEMPLATE_INCONSISTENT), classOther, errdefs.ErrInvalidArgument, ""},
		{"sensitive", p11.Error(p11.CKR_ATTRIBUTE_SENSITIVE), classOther, errdefs.ErrPermissionDenied, ""},
		{"pool timeout", errPoolTimeout, classOther, errdefs.ErrResourceExhausted, ""},
		{"already a kind", fmt.Errorf("x: %w", errdefs.ErrNotFound), classOther, errdefs.ErrNotFound, ""},
		{"other", errors.New("boom"), classOther, errdefs.ErrInternal, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := classify(tt.err); got != tt.wantClass {
				t.Errorf("class %v, want %v", got, tt.wantClass)
			}
			err := toKind("sign", "tok", tt.err)
			if !errors.Is(err, tt.wantKind) {
				t.Errorf("%q does not wrap %v", err, tt.wantKind)
			}
			if got := errdefs.ReasonOf(err); got != tt.wantReason {
				t.Errorf("reason %q, want %q", got, tt.wantReason)
			}
			if !strings.HasPrefix(err.Error(), "sign") {
				t.Errorf("%q does not name the operation", err)
			}
		})
	}
	// The PKCS#11 code stays in the chain for callers that want it.
	if err := toKind("sign", "tok", p11.Error(p11.CKR_DEVICE_ERROR)); !errors.Is(err, p11.Error(p11.CKR_DEVICE_ERROR)) {
		t.Errorf("%q lost the PKCS#11 error", err)
	}
}

func TestConfigRedactsPIN(t *testing.T) {
	cfg := Config{ModulePath: "/m.so", TokenLabel: "t", PIN: "s3cret-pin"}
	for _, s := range []string{fmt.Sprint(cfg), fmt.Sprintf("%v %+v %#v %s", cfg, cfg, cfg, cfg), cfg.LogValue().String()} {
		if strings.Contains(s, "s3cret-pin") {
			t.Errorf("PIN in %q", s)
		}
	}
}
