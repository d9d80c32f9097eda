package server

import (
	"context"
	"fmt"
	"sync"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/stats"
	"google.golang.org/grpc/status"
	"google.golang.org/grpc/tap"
	"google.golang.org/protobuf/proto"

	signerv1 "github.com/signerd/signerd/gen/signer/v1"
	"github.com/signerd/signerd/internal/errdefs"
)

// Request size, per method and per peer.
//
// gRPC enforces one receive limit for the whole server (MaxRecvMsgSize),
// before any handler runs; it must fit the largest request signerd takes
// (a skill's file manifest). Every other method needs kilobytes, so each
// method also has its own limit (methodLimit), checked on the decoded
// request before anything else is done with it.
//
// A request's bytes are held from the moment its stream opens until its
// handler has decoded it, and a peer may open many streams at once; so
// each peer (a Unix uid, a remote host: peerKey) has a budget of request
// bytes in flight. A new call reserves the server-wide limit from it
// before a byte of its body is read (a tap handle, which sees only the
// method); once the request is decoded, the reservation shrinks to its
// actual size, and the call's end releases it. A call that finds its
// peer's budget spent is refused at once, RESOURCE_EXHAUSTED: the peer's
// other calls, and other peers, are untouched.

// DefaultSmallRequest is the limit of every method but those that carry a
// skill's file manifest: a Sign, Verify or admin request is a digest, a
// few names and at most a Cloacina signature document or a PEM key.
const DefaultSmallRequest = 64 << 10

// DefaultInflightBytesPerPeer is the default budget of request bytes one
// peer may have in flight: twice what one connection's default 128
// streams reserve at the default 1 MiB request limit. At exactly one
// connection's worth (the old 128 MiB), a client that filled a connection
// with tiny calls (each reserving the server-wide limit until it is read)
// while another of its calls was running saw RESOURCE_EXHAUSTED.
const DefaultInflightBytesPerPeer = 256 << 20

// largeMethods may carry a skill's file manifest: they get the server-wide
// limit. VerifySkill carries it twice, in the .schemapin.sig and as the
// folder's own manifest whose names are checked against the signed ones.
var largeMethods = map[string]bool{
	signerv1.SkillService_SignSkill_FullMethodName: true,
	// A .schemapin.sig carries the manifest too (about 90 bytes a file).
	signerv1.SkillService_VerifySkill_FullMethodName: true,
	// Their headers may carry a .schemapin.sig (each message of a stream
	// is checked on its own; the manifest comes in small pieces).
	signerv1.SkillService_SignSkillStream_FullMethodName:   true,
	signerv1.SkillService_VerifySkillStream_FullMethodName: true,
}

// methodLimit is the largest request method accepts, given the
// server-wide limit.
func methodLimit(method string, serverLimit int) int {
	if largeMethods[method] {
		return serverLimit
	}
	return min(DefaultSmallRequest, serverLimit)
}

// checkRequestSize refuses a decoded request larger than its method's
// limit.
func checkRequestSize(method string, req any, serverLimit int) error {
	m, ok := req.(proto.Message)
	if !ok {
		return nil
	}
	if n, limit := proto.Size(m), methodLimit(method, serverLimit); n > limit {
		return status.Errorf(codes.ResourceExhausted, "request is %d bytes; %s accepts at most %d", n, method, limit)
	}
	return nil
}

// inflight is the per-peer budget of request bytes in flight.
type inflight struct {
	perPeer int64
	reserve int64 // reserved per new call: the server-wide limit
	// known holds the registered methods, set before serving: a call of
	// any other method is answered UNIMPLEMENTED without its body being
	// read, and without the end event that would release a reservation.
	known map[string]bool

	mu   sync.Mutex
	used map[string]int64
	// unsent is each peer's unary answers counted and not yet written
	// (answers.go). New calls and read-only answers count them against
	// the budget; a SignBatch item and a health check do not.
	unsent map[string]int64
}

func newInflight(perPeer, serverLimit int) *inflight {
	if perPeer <= 0 {
		return nil
	}
	return &inflight{perPeer: int64(max(perPeer, serverLimit)), reserve: int64(serverLimit), used: map[string]int64{}, unsent: map[string]int64{}}
}

// reservation is one call's share of its peer's budget.
type reservation struct {
	in  *inflight
	key string

	mu   sync.Mutex
	held int64
	// ended: the call is over and its bytes given back; it can hold no
	// more (a handler goroutine still finishing must not charge bytes
	// nothing would release).
	ended bool
}

// resize changes the bytes the call holds to n; growing fails when the
// peer's budget would be exceeded.
func (r *reservation) resize(n int64) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.resizeLocked(n, true)
}

// add changes the bytes the call holds by delta, under one lock so that
// concurrent charges and releases (SignBatch's reader and its items) add
// up; the call never holds less than nothing.
func (r *reservation) add(delta int64) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.resizeLocked(max(0, r.held+delta), false)
}

// end gives the call's bytes back for good.
func (r *reservation) end() {
	r.mu.Lock()
	defer r.mu.Unlock()
	_ = r.resizeLocked(0, false) // shrinking never fails
	r.ended = true
}

// resizeLocked changes what the call holds to n; growing fails beyond the
// peer's budget, counting its unsent answers when withAnswers.
func (r *reservation) resizeLocked(n int64, withAnswers bool) error {
	in := r.in
	if r.ended && n > r.held {
		return fmt.Errorf("%s: the call has ended: %w", r.key, errdefs.ErrResourceExhausted)
	}
	in.mu.Lock()
	defer in.mu.Unlock()
	unsent := int64(0)
	if withAnswers {
		unsent = in.unsent[r.key]
	}
	if n > r.held && in.used[r.key]+unsent+n-r.held > in.perPeer {
		return in.overBudgetLocked(r.key, unsent)
	}
	in.used[r.key] += n - r.held
	if in.used[r.key] <= 0 {
		delete(in.used, r.key)
	}
	r.held = n
	return nil
}

type reservationKey struct{}

// tap reserves the server-wide limit for a new call before its body is
// read, or refuses the call.
func (in *inflight) tap(ctx context.Context, info *tap.Info) (context.Context, error) {
	p, ok := peer.FromContext(ctx)
	if !ok || !in.known[info.FullMethodName] {
		return ctx, nil
	}
	r := &reservation{in: in, key: peerKey(p.AuthInfo, p.Addr)}
	r.mu.Lock()
	// A health check's request bytes count like any other's, but its
	// peer's unread answers do not refuse it.
	err := r.resizeLocked(in.reserve, info.FullMethodName != healthCheck)
	r.mu.Unlock()
	if err != nil {
		return nil, status.Error(codes.ResourceExhausted, err.Error())
	}
	return context.WithValue(ctx, reservationKey{}, r), nil
}

// decoded shrinks the call's reservation to the request it received.
func decoded(ctx context.Context, req any) {
	r, ok := ctx.Value(reservationKey{}).(*reservation)
	if !ok {
		return
	}
	if m, ok := req.(proto.Message); ok {
		_ = r.resize(int64(proto.Size(m))) // shrinking never fails
	}
}

// ChargeRequestBytes adds n bytes a handler keeps from a client stream to
// its call's reservation, or fails with ErrResourceExhausted when the
// peer's budget is spent. A negative n gives bytes back (never fails).
func ChargeRequestBytes(ctx context.Context, n int) error {
	r, ok := ctx.Value(reservationKey{}).(*reservation)
	if !ok {
		return nil
	}
	return r.add(int64(n))
}

// overBudgetLocked is the refusal of a peer whose budget is spent, naming
// its unsent answers when they count (unsent > 0). in.mu must be held.
func (in *inflight) overBudgetLocked(key string, unsent int64) error {
	if unsent > 0 {
		return fmt.Errorf("%s has %d request bytes in flight and %d bytes of answers it has not read, the most one peer may (--max-inflight-bytes-per-peer %d): %w",
			key, in.used[key], unsent, in.perPeer, errdefs.ErrResourceExhausted)
	}
	return fmt.Errorf("%s has %d request bytes in flight, the most one peer may (--max-inflight-bytes-per-peer %d): %w",
		key, in.used[key], in.perPeer, errdefs.ErrResourceExhausted)
}

// healthCheck's request reserves its bytes like any other call's, but
// neither the peer's unread answers refuse it nor is its few-byte answer
// counted: a supervisor must not read a peer's unread answers as the
// daemon being down.
const healthCheck = "/grpc.health.v1.Health/Check"

// inflightStats releases each call's reservation when the call ends,
// however it ends (decode error, cancellation, handler error). It is the
// server's stats handler; it does nothing else.
type inflightStats struct{}

func (inflightStats) TagRPC(ctx context.Context, _ *stats.RPCTagInfo) context.Context { return ctx }
func (inflightStats) HandleRPC(ctx context.Context, s stats.RPCStats) {
	if _, end := s.(*stats.End); !end {
		return
	}
	if r, ok := ctx.Value(reservationKey{}).(*reservation); ok {
		r.end()
	}
}

// TagConn finds the connection's count of unsent answers (answers.go).
func (inflightStats) TagConn(ctx context.Context, info *stats.ConnTagInfo) context.Context {
	if t, ok := info.RemoteAddr.(*trackedAddr); ok {
		return context.WithValue(ctx, answerConnKey{}, t.answers)
	}
	return ctx
}

// HandleConn gives a closed connection's unsent answers back.
func (inflightStats) HandleConn(ctx context.Context, s stats.ConnStats) {
	if _, ok := s.(*stats.ConnEnd); ok {
		if a := answerConnFrom(ctx); a != nil {
			a.end()
		}
	}
}

// learnMethods records the methods gs serves.
func (in *inflight) learnMethods(gs *grpc.Server) {
	if in == nil {
		return
	}
	in.known = map[string]bool{}
	for svc, info := range gs.GetServiceInfo() {
		for _, m := range info.Methods {
			in.known["/"+svc+"/"+m.Name] = true
		}
	}
}

// inflightOptions are the server options that apply the budget (none when
// it is off).
func inflightOptions(in *inflight) []grpc.ServerOption {
	if in == nil {
		return nil
	}
	return []grpc.ServerOption{grpc.InTapHandle(in.tap), grpc.StatsHandler(inflightStats{})}
}
