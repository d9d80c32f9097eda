package server

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"runtime/debug"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"

	"github.com/signerd/signerd/internal/errdefs"
	"github.com/signerd/signerd/internal/service"
)

// Identity is an authenticated caller.
type Identity struct {
	// ID is printable and stable: "uid:1000" for Unix peers,
	// "cert:<its names, comma-separated>" for TLS peers (certID),
	// "tcp-loopback" for plaintext loopback peers.
	ID  string
	UID uint32
	GID uint32
	// Unix is true for Unix-socket peers (UID/GID are meaningful).
	Unix bool
	// Names are a TLS peer's verified client-certificate names: its
	// subject alternative names (DNS, URI, email) then its common name.
	Names []string
	// TLS is true for mutual-TLS peers on the TCP listener (Names are
	// meaningful).
	TLS bool
	// Loopback is true for plaintext peers on a loopback TCP listener
	// (--insecure-loopback); nothing more is known about them.
	Loopback bool
}

// identify reads the caller's identity from the transport.
func identify(ctx context.Context) (Identity, error) {
	p, ok := peer.FromContext(ctx)
	if !ok || p.AuthInfo == nil {
		return Identity{}, fmt.Errorf("no authenticated peer: %w", errdefs.ErrUnauthenticated)
	}
	switch ai := p.AuthInfo.(type) {
	case UnixPeer:
		return Identity{ID: fmt.Sprintf("uid:%d", ai.UID), UID: ai.UID, GID: ai.GID, Unix: true}, nil
	case *TLSPeer:
		return ai.identity(time.Now())
	case credentials.TLSInfo:
		return tlsIdentity(ai.State, time.Now())
	case LoopbackPeer:
		return Identity{ID: LoopbackID, Loopback: true}, nil
	}
	return Identity{}, fmt.Errorf("unsupported peer authentication %q: %w", p.AuthInfo.AuthType(), errdefs.ErrUnauthenticated)
}

type identityKey struct{}

// IdentityFrom returns the caller identity the interceptor stored.
func IdentityFrom(ctx context.Context) (Identity, bool) {
	id, ok := ctx.Value(identityKey{}).(Identity)
	return id, ok
}

// interceptors holds what the chain needs.
type interceptors struct {
	log *slog.Logger
	// lines bounds the lines about failed calls (loglimit.go).
	lines *callLogLimiter
	authz Authorizer
	audit DenialRecorder
	calls CallObserver
	// maxRecv is the server-wide request limit (reqlimits.go).
	maxRecv int
}

// CallObserver is told about every finished call (for metrics).
type CallObserver interface {
	ObserveCall(method, code string, d time.Duration)
}

// DenialRecorder appends an audit record for a refused call.
type DenialRecorder interface {
	RecordDenial(ctx context.Context, operation, detail string)
}

// unary is the single unary chain: recover → identity → log → authorize →
// error mapping → handler. Order matters: recovery wraps everything so a
// panic anywhere becomes Internal; identity precedes the log so every line
// names the caller; errors are mapped inside the log so it sees the code.
func (ic *interceptors) unary(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (resp any, err error) {
	start := time.Now()
	// A fault in the database's memory map (a damaged file) becomes a
	// panic of this call, recovered below, rather than the end of the
	// process (boltstore's Guard does the same for Open).
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		if r := recover(); r != nil {
			ic.log.ErrorContext(ctx, "panic in handler", "method", info.FullMethod, "panic", r, "stack", string(debug.Stack()))
			resp, err = nil, status.Error(codes.Internal, "internal error; see the signerd log")
		}
	}()
	id, err := identify(ctx)
	if err != nil {
		return nil, ic.unidentified(ctx, info.FullMethod, start, err)
	}
	ctx = context.WithValue(ctx, identityKey{}, id)
	ctx = service.WithCaller(ctx, service.Caller{ID: id.ID})

	decoded(ctx, req)
	if err = checkRequestSize(info.FullMethod, req, ic.maxRecv); err == nil {
		resp, err = ic.handle(ctx, req, info, handler)
	}
	if err == nil {
		if err = reserveAnswer(ctx, info.FullMethod, resp); err != nil {
			resp = nil
		}
	}

	code := status.Code(err)
	dur := time.Since(start)
	if ic.calls != nil {
		ic.calls.ObserveCall(info.FullMethod, code.String(), dur)
	}
	if code == codes.OK {
		// Checked first: building the attributes of a line nobody reads
		// costs allocations on every successful call.
		if ic.log.Enabled(ctx, slog.LevelDebug) {
			ic.log.DebugContext(ctx, "call", "method", info.FullMethod, "caller", id.ID, "code", code.String(), "duration", dur)
		}
		return resp, err
	}
	ic.logFailure(ctx, info.FullMethod, id.ID, code, dur, err)
	return resp, err
}

func (ic *interceptors) handle(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	id, _ := IdentityFrom(ctx)
	if err := ic.authz.Authorize(ctx, id, info.FullMethod, req); err != nil {
		if ic.audit != nil {
			ic.audit.RecordDenial(ctx, info.FullMethod, err.Error())
		}
		return nil, ToStatus(ctx, ic.log, err)
	}
	resp, err := handler(ctx, req)
	return resp, ToStatus(ctx, ic.log, err)
}

// stream applies recovery, identity and authorization to streaming calls
// (the health Watch today).
func (ic *interceptors) stream(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) (err error) {
	ctx := ss.Context()
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true)) // as in unary
	defer func() {
		if r := recover(); r != nil {
			ic.log.ErrorContext(ctx, "panic in stream handler", "method", info.FullMethod, "panic", r, "stack", string(debug.Stack()))
			err = status.Error(codes.Internal, "internal error; see the signerd log")
		}
	}()
	id, err := identify(ctx)
	if err != nil {
		return ic.unidentified(ctx, info.FullMethod, time.Now(), err)
	}
	ctx = service.WithCaller(context.WithValue(ctx, identityKey{}, id), service.Caller{ID: id.ID})
	if err := ic.authz.Authorize(ctx, id, info.FullMethod, nil); err != nil {
		if ic.audit != nil {
			ic.audit.RecordDenial(ctx, info.FullMethod, err.Error())
		}
		return ToStatus(ctx, ic.log, err)
	}
	return ToStatus(ctx, ic.log, handler(srv, &identifiedStream{ServerStream: ss, ctx: ctx, clientStream: info.IsClientStream}))
}

// identifiedStream carries the context with the caller's identity into a
// stream handler (grpc.ServerStream's own Context cannot be replaced).
type identifiedStream struct {
	grpc.ServerStream
	ctx context.Context
	// clientStream: the handler receives many messages and charges what
	// it keeps (ChargeRequestBytes); otherwise the one request received
	// shrinks the call's reservation, as for unary calls.
	clientStream bool
}

func (s *identifiedStream) Context() context.Context { return s.ctx }

func (s *identifiedStream) RecvMsg(m any) error {
	err := s.ServerStream.RecvMsg(m)
	if err == nil && !s.clientStream {
		decoded(s.ctx, m)
	}
	return err
}

// unidentified answers a call whose peer is no identity (a TLS client whose
// certificate expired or whose CA a reload removed): counted and logged
// like any refused call, under the peer's address, since the operator
// wants to see a removed CA's clients still calling.
func (ic *interceptors) unidentified(ctx context.Context, method string, start time.Time, err error) error {
	err = ToStatus(ctx, ic.log, err)
	code, dur := status.Code(err), time.Since(start)
	if ic.calls != nil {
		ic.calls.ObserveCall(method, code.String(), dur)
	}
	caller := "peer:unknown"
	if p, ok := peer.FromContext(ctx); ok && p.Addr != nil {
		// The host, not the port: one line budget per client host.
		host, _, err := net.SplitHostPort(p.Addr.String())
		if err != nil {
			host = p.Addr.String()
		}
		caller = "peer:" + host
	}
	ic.logFailure(ctx, method, caller, code, dur, err)
	return err
}

// logFailure writes the line about a failed call, within its caller's and
// code's share (callLogLimiter): the first lines of each window in full,
// the last of them saying that more are counted, the next window's first
// saying how many were held back.
func (ic *interceptors) logFailure(ctx context.Context, method, caller string, code codes.Code, dur time.Duration, err error) {
	write, held, last := true, 0, false
	if ic.lines != nil {
		if write, held, last = ic.lines.allow(caller + " " + code.String()); !write {
			return
		}
	}
	attrs := []any{"method", method, "caller", caller, "code", code.String(), "duration", dur, "err", errdefs.ClipMessage(status.Convert(err).Message())}
	if held > 0 {
		attrs = append(attrs, "held_back", held)
	}
	if last {
		attrs = append(attrs, "more", fmt.Sprintf("further lines of this caller and code in the next %s are counted, not written", callLogWindow))
	}
	switch code {
	case codes.Internal, codes.Unknown, codes.Unavailable:
		ic.log.ErrorContext(ctx, "call failed", attrs...)
	default:
		ic.log.InfoContext(ctx, "call refused", attrs...)
	}
}

// flushLines says, once a window, how many lines about failed calls each
// caller and code had held back in the window that ended, until stop.
func (ic *interceptors) flushLines(stop <-chan struct{}) {
	t := time.NewTicker(callLogWindow)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case <-t.C:
		}
		for key, n := range ic.lines.flush() {
			caller, code, _ := strings.Cut(key, " ")
			ic.log.Info("lines about failed calls held back", "caller", caller, "code", code, "held_back", n, "window", callLogWindow)
		}
	}
}
