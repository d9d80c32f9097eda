package client

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"strings"
	"sync/atomic"
	"syscall"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"

	signerv1 "github.com/signerd/signerd/gen/signer/v1"
	"github.com/signerd/signerd/internal/errdefs"
)

// Client talks to one signerd. It is safe for concurrent use; make one and
// share it.
type Client struct {
	conn    *grpc.ClientConn
	address string
	// lastDialErr is the latest failure to connect the Unix socket: gRPC
	// reports it only as text in an UNAVAILABLE status, and FromStatus
	// needs its errno to tell a daemon that is down from a socket the
	// caller may not open.
	lastDialErr atomic.Pointer[error]

	// The generated stubs, for the RPCs this package does not wrap; pass
	// their errors through FromStatus.
	Signer signerv1.SignerServiceClient
	Keys   signerv1.KeyServiceClient
	Trust  signerv1.TrustServiceClient
	Skills signerv1.SkillServiceClient
	Health grpc_health_v1.HealthClient
	Audit  signerv1.AuditServiceClient
	// Log reads the verifiable log: checkpoints and proofs.
	Log signerv1.LogServiceClient
}

// DialUnix connects to signerd's Unix socket. The connection is lazy: an
// unreachable daemon shows up as ErrUnavailable on the first call.
func DialUnix(socket string) (*Client, error) {
	if socket == "" {
		return nil, fmt.Errorf("no socket given: %w", errdefs.ErrInvalidArgument)
	}
	c := &Client{}
	conn, err := grpc.NewClient("unix:"+socket,
		// The kernel carries the bytes; the server authenticates us by
		// SO_PEERCRED. There is nothing to encrypt on a local socket.
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithContextDialer(func(ctx context.Context, addr string) (net.Conn, error) {
			var d net.Dialer
			conn, err := d.DialContext(ctx, "unix", socket)
			if err != nil {
				c.lastDialErr.Store(&err)
				return nil, err
			}
			c.lastDialErr.Store(nil)
			return conn, nil
		}),
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
	return c.init(conn, socket), nil
}

// init wraps a connection (DialUnix, DialTLS, DialLoopback).
func (c *Client) init(conn *grpc.ClientConn, address string) *Client {
	c.conn = conn
	c.address = address
	c.Signer = signerv1.NewSignerServiceClient(conn)
	c.Keys = signerv1.NewKeyServiceClient(conn)
	c.Trust = signerv1.NewTrustServiceClient(conn)
	c.Skills = signerv1.NewSkillServiceClient(conn)
	c.Health = grpc_health_v1.NewHealthClient(conn)
	c.Audit = signerv1.NewAuditServiceClient(conn)
	c.Log = signerv1.NewLogServiceClient(conn)
	return c
}

// Close closes the connection.
func (c *Client) Close() error { return c.conn.Close() }

// Address is what the client dialled.
func (c *Client) Address() string { return c.address }

// FromStatus turns an error returned by a generated client method into a
// domain error: a *VerificationError for verification refusals, otherwise
// the kind of the code (ErrUnavailable, ErrPermissionDenied, …) with the
// server's reason attached. Every method of Client applies it; callers of
// the generated stubs (c.Signer, c.Keys, …) apply it themselves.
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
		if e := c.socketError(); e != nil {
			return e
		}
		switch {
		case strings.Contains(msg, "remote error: tls:"):
			// It runs, and refused this client's certificate: the
			// connection was refused (as the contract's exit 3 says),
			// but "is it running?" would send the user the wrong way.
			return fmt.Errorf("signerd at %s refused this client's TLS certificate (%s): --tls-cert and --tls-key must be a valid client certificate signed by a CA signerd trusts (its --client-ca): %w",
				c.address, tlsAlert(msg), errdefs.ErrUnavailable)
		case strings.Contains(msg, "x509:") || strings.Contains(msg, "tls: failed to verify"):
			msg = fmt.Sprintf("signerd at %s presented a certificate this client does not trust (--ca names the CA of signerd's certificate): %s", c.address, msg)
		default:
			msg = fmt.Sprintf("cannot reach signerd at %s (is it running? `make run` starts one): %s", c.address, msg)
		}
	}
	e := fmt.Errorf("%s: %w", msg, kind)
	if reason != "" {
		return errdefs.WithReason(reason, e)
	}
	return e
}

// socketError names why the Unix socket could not be connected, from the
// last dial's errno; nil when there was no dial failure.
func (c *Client) socketError() error {
	p := c.lastDialErr.Load()
	if p == nil {
		return nil
	}
	err := *p
	switch {
	case errors.Is(err, fs.ErrPermission):
		return errdefs.WithReason(errdefs.ReasonPermissionDenied, fmt.Errorf(
			"permission denied: you may not open signerd's socket %s (its owner, group and mode decide who may connect: signerd --socket-mode, or join the socket's group): %w",
			c.address, errdefs.ErrPermissionDenied))
	case errors.Is(err, fs.ErrNotExist):
		return fmt.Errorf("cannot reach signerd at %s: no such file or directory (is it running? `make run` starts one; --socket or SIGNCTL_SOCKET chooses the socket): %w",
			c.address, errdefs.ErrUnavailable)
	case errors.Is(err, syscall.ECONNREFUSED):
		return fmt.Errorf("cannot reach signerd at %s: nothing listens on it (is it running? the socket file is stale): %w", c.address, errdefs.ErrUnavailable)
	}
	return fmt.Errorf("cannot reach signerd at %s: %v: %w", c.address, err, errdefs.ErrUnavailable)
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

// tlsAlert returns the TLS alert in a transport error's message ("remote
// error: tls: certificate required"), or the message.
func tlsAlert(msg string) string {
	if i := strings.Index(msg, "remote error: tls:"); i >= 0 {
		return strings.TrimRight(msg[i:], "\"")
	}
	return msg
}
