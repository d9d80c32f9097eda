package server

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"testing"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/signerd/signerd/client"
	"github.com/signerd/signerd/internal/errdefs"
)

func TestToStatus(t *testing.T) {
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	tests := []struct {
		name   string
		err    error
		code   codes.Code
		reason string
	}{
		{"tampered", errdefs.Verification(errdefs.ReasonPackageTampered, "x"), codes.FailedPrecondition, "PACKAGE_TAMPERED"},
		{"untrusted", fmt.Errorf("wrapped: %w", errdefs.Verification(errdefs.ReasonUntrustedSigner, "x")), codes.FailedPrecondition, "UNTRUSTED_SIGNER"},
		{"not found", errdefs.Verification(errdefs.ReasonSignatureNotFound, "x"), codes.NotFound, "SIGNATURE_NOT_FOUND"},
		{"malformed", errdefs.Verification(errdefs.ReasonMalformedSignature, "x"), codes.InvalidArgument, "MALFORMED_SIGNATURE"},
		{"key not found", errdefs.WithReason(errdefs.ReasonKeyNotFound, fmt.Errorf("k: %w", errdefs.ErrNotFound)), codes.NotFound, "KEY_NOT_FOUND"},
		{"generic invalid", fmt.Errorf("x: %w", errdefs.ErrInvalidArgument), codes.InvalidArgument, "INVALID_ARGUMENT"},
		{"denied", fmt.Errorf("x: %w", errdefs.ErrPermissionDenied), codes.PermissionDenied, "PERMISSION_DENIED"},
		{"hsm down", fmt.Errorf("x: %w", errdefs.ErrUnavailable), codes.Unavailable, "HSM_UNAVAILABLE"},
		{"deadline", fmt.Errorf("x: %w", context.DeadlineExceeded), codes.DeadlineExceeded, "DEADLINE_EXCEEDED"},
		{"unknown error is internal", errors.New("disk on fire"), codes.Internal, "INTERNAL"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := ToStatus(context.Background(), log, tt.err)
			st := status.Convert(err)
			if st.Code() != tt.code {
				t.Fatalf("code %v, want %v", st.Code(), tt.code)
			}
			var reason string
			for _, d := range st.Details() {
				if ei, ok := d.(*errdetails.ErrorInfo); ok {
					reason = ei.GetReason()
				}
			}
			if reason != tt.reason {
				t.Fatalf("reason %q, want %q", reason, tt.reason)
			}
			if tt.code == codes.Internal && st.Message() == tt.err.Error() {
				t.Fatal("internal error text leaked to the client")
			}
			// The client maps it back to the same kind and reason.
			back := (&client.Client{}).FromStatus(err)
			if errdefs.ReasonOf(back) != errdefs.Reason(tt.reason) && tt.code != codes.DeadlineExceeded {
				t.Fatalf("client reason %q, want %q", errdefs.ReasonOf(back), tt.reason)
			}
			if _, isVerify := errdefs.AsVerification(tt.err); isVerify {
				if _, ok := errdefs.AsVerification(back); !ok {
					t.Fatal("client lost the verification error type")
				}
			}
		})
	}
	if ToStatus(context.Background(), log, nil) != nil {
		t.Fatal("nil error became a status")
	}
}

func TestDefaultAuthorizer(t *testing.T) {
	a := DefaultAuthorizer{AdminUID: 1000}
	admin := Identity{ID: "uid:1000", UID: 1000, Unix: true}
	root := Identity{ID: "uid:0", UID: 0, Unix: true}
	other := Identity{ID: "uid:2000", UID: 2000, Unix: true}
	tests := []struct {
		id     Identity
		method string
		ok     bool
	}{
		{admin, "/signer.v1.KeyService/CreateKey", true},
		{root, "/signer.v1.SignerService/Sign", true},
		{other, "/signer.v1.SignerService/Verify", true},
		{other, "/signer.v1.SignerService/ListTrusted", true},
		{other, "/signer.v1.SignerService/Sign", false},
		{other, "/signer.v1.TrustService/AddTrust", false},
		{admin, "/signer.v1.NewService/NotYetClassified", false},
		{Identity{ID: "tcp"}, "/signer.v1.SignerService/Verify", false},
	}
	for _, tt := range tests {
		err := a.Authorize(context.Background(), tt.id, tt.method, nil)
		if (err == nil) != tt.ok {
			t.Errorf("%s %s: %v", tt.id.ID, tt.method, err)
		}
		if err != nil && !errors.Is(err, errdefs.ErrPermissionDenied) {
			t.Errorf("denial is not ErrPermissionDenied: %v", err)
		}
	}
}
