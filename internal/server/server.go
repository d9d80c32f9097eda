// Package server is signerd's gRPC transport: thin adapters from the
// generated API to internal/service, one interceptor chain (recover,
// identity, log, authorization, error mapping), the health service and the
// Unix-socket listener. It holds no business logic and no storage.
//
// Callers are identified by the transport (see Identity): SO_PEERCRED on the
// Unix socket, a verified client certificate on the mutual-TLS listener
// (ListenTLS), or the single identity LoopbackID on a plaintext loopback
// listener (ListenLoopback); one grpc.Server serves them all. What an
// identity may do is decided by DefaultAuthorizer without a policy file, or
// by a Policy read from one; the policy file format is documented on Policy.
package server

import (
	"context"
	"log/slog"
	"net"
	"runtime"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/health/grpc_health_v1"

	signerv1 "github.com/signerd/signerd/gen/signer/v1"
	"github.com/signerd/signerd/internal/service"
)

// Options configure a Server.
type Options struct {
	Logger     *slog.Logger
	Authorizer Authorizer
	// Denials records refused calls in the audit log (optional).
	Denials DenialRecorder
	// Calls observes finished calls (metrics); optional.
	Calls CallObserver
	// MaxRecvMsgSize bounds request size (default 1 MiB: signing requests
	// carry digests, not artifacts).
	MaxRecvMsgSize int
	// MaxInflightBytesPerPeer bounds the request bytes one peer has in
	// flight (reqlimits.go); 0 means DefaultInflightBytesPerPeer, a
	// negative value no bound.
	MaxInflightBytesPerPeer int
	// MaxConcurrentStreams bounds concurrent calls per connection.
	MaxConcurrentStreams uint32
	// MaxConnections bounds the connections each listener passed to Serve
	// holds open (0: unlimited); see LimitListener.
	MaxConnections int
	// MaxConnectionsPerPeer bounds the connections one peer (a Unix user,
	// a remote host) holds open across all listeners (0: unlimited); more
	// are closed after the handshake. See peerlimit.go.
	MaxConnectionsPerPeer int
	// ConnectionRefused is told about each connection refused by
	// MaxConnectionsPerPeer (metrics); optional.
	ConnectionRefused func()
	// MaxUnauthenticatedConnections and MaxUnauthenticatedPerPeer bound
	// the TCP connections still in their TLS handshake, in all and per
	// source address (0: no bound); more are closed at accept. Each has
	// TLSHandshakeTimeout from accept to finish it (0: HandshakeTimeout).
	// See handshakelimit.go.
	MaxUnauthenticatedConnections int
	MaxUnauthenticatedPerPeer     int
	TLSHandshakeTimeout           time.Duration
	// HandshakeTimeout closes connections that have not completed the
	// transport and HTTP/2 handshakes in time (default 10s).
	HandshakeTimeout time.Duration
	// KeepaliveMinTime is the shortest keepalive ping interval clients may
	// use (default 10s); MaxConnectionIdle closes connections without calls
	// for that long (0: never). See limits.go.
	KeepaliveMinTime  time.Duration
	MaxConnectionIdle time.Duration
	// Reflection serves gRPC server reflection (reflection.go).
	Reflection bool
}

// Server serves signerd's gRPC API.
type Server struct {
	grpc   *grpc.Server
	health *drainingHealth
	log    *slog.Logger
	once   sync.Once
	// maxConns is Options.MaxConnections, applied by Serve to each
	// listener; peers bounds each peer across all of them (nil: no bound).
	maxConns int
	peers    *peerLimiter
	pending  *handshakeLimiter
	// budget is the per-peer budget of requests and unread answers (nil:
	// none).
	budget *inflight
	// stopLines ends the goroutine that reports held-back log lines.
	stopLines chan struct{}
}

// New builds a server over the service.
func New(svc *service.Service, opts Options) *Server {
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.Authorizer == nil {
		opts.Authorizer = NewDefaultAuthorizer()
	}
	if opts.MaxRecvMsgSize == 0 {
		opts.MaxRecvMsgSize = 1 << 20
	}
	if opts.MaxConcurrentStreams == 0 {
		opts.MaxConcurrentStreams = 256
	}
	if opts.MaxInflightBytesPerPeer == 0 {
		opts.MaxInflightBytesPerPeer = DefaultInflightBytesPerPeer
	}
	inflight := newInflight(opts.MaxInflightBytesPerPeer, opts.MaxRecvMsgSize)
	ic := &interceptors{log: opts.Logger, lines: newCallLogLimiter(), authz: opts.Authorizer, audit: opts.Denials, calls: opts.Calls, maxRecv: opts.MaxRecvMsgSize}
	creds := newTransportCredentials(opts.Logger)
	creds.connTimeout = orDefault(opts.HandshakeTimeout, 10*time.Second)
	creds.tlsTimeout = opts.TLSHandshakeTimeout
	serverOptions := []grpc.ServerOption{
		grpc.Creds(creds),
		grpc.ChainUnaryInterceptor(ic.unary),
		grpc.ChainStreamInterceptor(ic.stream),
		grpc.MaxRecvMsgSize(opts.MaxRecvMsgSize),
		grpc.MaxConcurrentStreams(opts.MaxConcurrentStreams),
		grpc.MaxHeaderListSize(MaxHeaderListSize),
		grpc.ConnectionTimeout(creds.connTimeout),
		grpc.KeepaliveEnforcementPolicy(keepalivePolicy(opts)),
		grpc.KeepaliveParams(keepaliveParams(opts)),
	}
	serverOptions = append(serverOptions, inflightOptions(inflight)...)
	gs := grpc.NewServer(append(serverOptions, TransportTuning(opts.MaxRecvMsgSize)...)...)
	signerv1.RegisterSignerServiceServer(gs, &signerServer{svc: svc, authz: opts.Authorizer, denials: opts.Denials, log: opts.Logger, maxRecv: opts.MaxRecvMsgSize})
	signerv1.RegisterKeyServiceServer(gs, &keyServer{svc: svc})
	signerv1.RegisterTrustServiceServer(gs, &trustServer{svc: svc})
	signerv1.RegisterSkillServiceServer(gs, &skillServer{svc: svc, authz: opts.Authorizer, denials: opts.Denials, maxRecv: opts.MaxRecvMsgSize})
	signerv1.RegisterAuditServiceServer(gs, &auditServer{svc: svc})
	signerv1.RegisterLogServiceServer(gs, &logServer{svc: svc})
	hs := newDrainingHealth()
	grpc_health_v1.RegisterHealthServer(gs, hs)
	if opts.Reflection {
		registerReflection(gs)
	}
	inflight.learnMethods(gs)
	stopLines := make(chan struct{})
	go ic.flushLines(stopLines)
	return &Server{grpc: gs, health: hs, log: opts.Logger, maxConns: opts.MaxConnections, budget: inflight, stopLines: stopLines,
		peers:   newPeerLimiter(opts.MaxConnectionsPerPeer, opts.ConnectionRefused),
		pending: newHandshakeLimiter(opts.MaxUnauthenticatedConnections, opts.MaxUnauthenticatedPerPeer, opts.ConnectionRefused)}
}

// MaxHeaderListSize bounds a call's request headers, as decoded: gRPC's
// default is 16 MiB, and HPACK lets a few bytes on the wire name a large
// header already in its table, so a caller could make the daemon hold
// megabytes per stream (gRPC keeps every "-bin" header base64-decoded for
// the stream's life) before any authorization or request budget applies.
// signerd's clients send well under 1 KiB; 16 KiB leaves room for
// tracing and proxy headers.
const MaxHeaderListSize = 16 << 10

// streamWorkers is how many calls run on gRPC's long-lived stream workers
// rather than on a goroutine of their own. A Sign call blocks in the HSM
// and then in the group commit, so on a busy daemon dozens are in flight
// at once; a fresh goroutine starts with the runtime's average stack size,
// which such a call outgrew, copying its stack as it grew (runtime.newstack:
// ~22 µs of CPU per Sign measured with perf at 32 clients, against none on
// a worker whose stack has grown). Calls beyond the pool still get a
// goroutine each, as before; 64 idle workers cost a few hundred KiB.
const streamWorkers = 64

// TransportTuning is how signerd tunes gRPC's transport for many small
// calls, given the largest request it accepts. The benchmark's floor server
// uses the same, so that it differs from signerd only in doing nothing but
// the HSM call.
func TransportTuning(maxRecvMsgSize int) []grpc.ServerOption {
	window := int32(max(1<<20, min(maxRecvMsgSize, 1<<30)))
	return []grpc.ServerOption{
		// A pool of stream workers instead of a goroutine per call, and
		// write buffers shared between connections: both cut per-call
		// CPU, which is what limits Sign on a small machine.
		grpc.NumStreamWorkers(uint32(max(streamWorkers, runtime.GOMAXPROCS(0)))),
		grpc.SharedWriteBuffer(true),
		// Fixed flow-control windows: no bandwidth-delay probing (PING
		// frames in answer to received data) on every call. They bound
		// only what clients send, and hold the largest request allowed
		// whole, so no request waits for a window update.
		grpc.InitialWindowSize(window),
		grpc.InitialConnWindowSize(window),
	}
}

// SetServing reports the daemon's state through the health service, for
// the whole server ("") and each signerd service.
func (s *Server) SetServing(serving bool) {
	st := grpc_health_v1.HealthCheckResponse_NOT_SERVING
	if serving {
		st = grpc_health_v1.HealthCheckResponse_SERVING
	}
	for _, name := range []string{"", signerv1.SignerService_ServiceDesc.ServiceName, signerv1.KeyService_ServiceDesc.ServiceName, signerv1.TrustService_ServiceDesc.ServiceName, signerv1.SkillService_ServiceDesc.ServiceName, signerv1.LogService_ServiceDesc.ServiceName} {
		s.health.SetServingStatus(name, st)
	}
}

// Serve accepts connections on l until Stop.
func (s *Server) Serve(l net.Listener) error {
	return s.grpc.Serve(limitListen(l, s.maxConns, s.peers, s.pending, s.budget, s.log))
}

// Stop drains in-flight calls and stops; if ctx ends first, remaining calls
// are cut off.
func (s *Server) Stop(ctx context.Context) {
	s.once.Do(func() {
		defer close(s.stopLines)
		s.health.Shutdown()
		done := make(chan struct{})
		go func() {
			s.grpc.GracefulStop()
			close(done)
		}()
		select {
		case <-done:
		case <-ctx.Done():
			s.log.Warn("drain timed out; closing remaining calls")
			s.grpc.Stop()
			<-done
		}
	})
}
