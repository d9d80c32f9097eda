// Package client is the typed Go client of signerd's API, used by signctl
// and tests. It dials the Unix socket and turns gRPC statuses back into
// errdefs errors, so callers switch on errors.Is and reasons, never on
// message strings.
package client

import (
	"context"
	"errors"
	"fmt"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"

	signerv1 "github.com/signerd/signerd/gen/signer/v1"
	"github.com/signerd/signerd/internal/errdefs"
)

// Client talks to one signerd.
type Client struct {
	conn    *grpc.ClientConn
	address string

	Signer signerv1.SignerServiceClient
	Keys   signerv1.KeyServiceClient
	Trust  signerv1.TrustServiceClient
	Skills signerv1.SkillServiceClient
	Health grpc_health_v1.HealthClient
	Audit  signerv1.AuditServiceClient
}

// DialUnix connects to signerd's Unix socket. The connection is lazy: an
// unreachable daemon shows up as ErrUnavailable on the first call.
func DialUnix(socket string) (*Client, error) {
	if socket == "" {
		return nil, fmt.Errorf("no socket given: %w", errdefs.ErrInvalidArgument)
	}
	conn, err := grpc.NewClient("unix:"+socket,
		// The kernel carries the bytes; the server authenticates us by
		// SO_PEERCRED. There is nothing to encrypt on a local socket.
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(16<<20)),
		// Fixed flow-control windows turn off gRPC's bandwidth-delay
		// probing, which answers received data with PING frames: on a
		// local socket there is no bandwidth to discover, and the pings
		// cost both processes a write and a wake-up per call.
		grpc.WithInitialWindowSize(1<<20),
		grpc.WithInitialConnWindowSize(1<<20),
	)
	if err != nil {
		return nil, fmt.Errorf("socket %s: %w", socket, err)
	}
	return newClient(conn, socket), nil
}

// newClient wraps a connection (DialUnix, DialTLS, DialLoopback).
func newClient(conn *grpc.ClientConn, address string) *Client {
	return &Client{
		conn:    conn,
		address: address,
		Signer:  signerv1.NewSignerServiceClient(conn),
		Keys:    signerv1.NewKeyServiceClient(conn),
		Trust:   signerv1.NewTrustServiceClient(conn),
		Skills:  signerv1.NewSkillServiceClient(conn),
		Health:  grpc_health_v1.NewHealthClient(conn),
		Audit:   signerv1.NewAuditServiceClient(conn),
	}
}

// Close closes the connection.
func (c *Client) Close() error { return c.conn.Close() }

// Address is what the client dialled.
func (c *Client) Address() string { return c.address }

// FromStatus turns an error returned by a generated client method into a
// domain error: a *errdefs.VerificationError for verification refusals,
// otherwise the errdefs kind of the code with the server's reason attached.
func (c *Client) FromStatus(err error) error {
	if err == nil {
		return nil
	}
	st, ok := status.FromError(err)
	if !ok {
		return err
	}
	var info *errdetails.ErrorInfo
	for _, d := range st.Details() {
		if ei, ok := d.(*errdetails.ErrorInfo); ok {
			info = ei
			break
		}
	}
	reason := errdefs.Reason("")
	if info != nil {
		reason = errdefs.Reason(info.GetReason())
	}
	// The server marks verification refusals explicitly: KEY_REVOKED, for
	// one, is also the reason a revoked key cannot sign.
	if info != nil && info.GetMetadata()["kind"] == "verification" {
		return &errdefs.VerificationError{
			Reason:      reason,
			Message:     st.Message(),
			PackageHash: info.GetMetadata()["package_hash"],
			Fingerprint: info.GetMetadata()["signer_fingerprint"],
			Code:        info.GetMetadata()["error_code"],
		}
	}
	kind := kindOf(st.Code())
	msg := st.Message()
	if st.Code() == codes.Unavailable && info == nil {
		msg = fmt.Sprintf("cannot reach signerd at %s (is it running? `make run` starts one): %s", c.address, msg)
	}
	e := fmt.Errorf("%s: %w", msg, kind)
	if reason != "" {
		return errdefs.WithReason(reason, e)
	}
	return e
}

func kindOf(c codes.Code) error {
	switch c {
	case codes.InvalidArgument, codes.OutOfRange:
		return errdefs.ErrInvalidArgument
	case codes.NotFound:
		return errdefs.ErrNotFound
	case codes.AlreadyExists:
		return errdefs.ErrAlreadyExists
	case codes.FailedPrecondition, codes.Aborted:
		return errdefs.ErrFailedPrecondition
	case codes.PermissionDenied:
		return errdefs.ErrPermissionDenied
	case codes.Unauthenticated:
		return errdefs.ErrUnauthenticated
	case codes.Unavailable:
		return errdefs.ErrUnavailable
	case codes.ResourceExhausted:
		return errdefs.ErrResourceExhausted
	case codes.DeadlineExceeded:
		return context.DeadlineExceeded
	case codes.Canceled:
		return context.Canceled
	}
	return errdefs.ErrInternal
}

// IsVerificationReason reports whether err is a verification refusal with
// one of the given reasons (any reason when none are given).
func IsVerificationReason(err error, reasons ...errdefs.Reason) bool {
	var v *errdefs.VerificationError
	if !errors.As(err, &v) {
		return false
	}
	if len(reasons) == 0 {
		return true
	}
	for _, r := range reasons {
		if v.Reason == r {
			return true
		}
	}
	return false
}
