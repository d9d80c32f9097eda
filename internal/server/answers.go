package server

import (
	"context"
	"encoding/binary"
	"fmt"
	"net"
	"sync"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	signerv1 "github.com/signerd/signerd/gen/signer/v1"
)

// Answers not yet read count against their peer's budget.
//
// A finished answer waits in gRPC's transport until the client grants
// HTTP/2 flow-control window for it, and a stream keeps its slot until its
// trailers, which follow the answer, are written. A client that never
// reads (a window of 0, or a socket it does not read) made the daemon hold
// every answer it asked for: about 1 MiB for each GetDiscovery of 60 KB
// (json escapes '<' as six bytes), gigabytes from one uid in a review,
// outside the budget of request bytes, which a call gives back when its
// handler returns.
//
// So the bytes of every answer count against the same per-peer budget
// (reqlimits.go) from the moment the answer is handed to the transport
// (stats.OutPayload) until the transport has written them to the
// connection (its HTTP/2 DATA frames, counted as they are written) or the
// connection closes. A peer whose unread answers fill its budget gets its
// new calls refused at once, RESOURCE_EXHAUSTED, like one whose requests
// fill it. Before a read-only call's answer is handed over, the unary
// chain reserves its size against the budget and refuses the answer when
// it does not fit (reserveAnswer); a call that changed state (a signature,
// a key, a trust edit) always gets its answer, whose bytes are counted
// whatever the budget says: its work is done and recorded, and these
// answers are small.

// answerConn counts, for one connection, the answer bytes handed to the
// transport and not yet written, and holds them in the peer's budget.
type answerConn struct {
	in  *inflight
	key string

	mu sync.Mutex
	// unsent is the answer bytes handed over and not yet written; it may
	// go below 0 for a moment, when the transport writes an answer before
	// its OutPayload event arrives. Only its positive part is held.
	unsent int64
	ended  bool
	// The HTTP/2 frame being written: its header, as far as it has come,
	// and how much of its payload is still to come.
	hdr     [9]byte
	hdrN    int
	left    int64
	dataFrm bool
}

// add changes unsent by delta and the peer's budget by the change in its
// positive part.
func (a *answerConn) add(delta int64) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.ended {
		return
	}
	before := max(0, a.unsent)
	a.unsent += delta
	a.in.force(a.key, max(0, a.unsent)-before)
}

// end gives everything back: the connection is closed, and with it every
// answer it held.
func (a *answerConn) end() {
	a.mu.Lock()
	defer a.mu.Unlock()
	if !a.ended {
		a.in.force(a.key, -max(0, a.unsent))
		a.unsent, a.ended = 0, true
	}
}

// wrote follows the server's side of the HTTP/2 connection as it is
// written (frames of 9 bytes of header and their payload; the server
// sends no preface) and counts the DATA frames' payload as written answer
// bytes. gRPC sends no padding, and an answer's DATA payload is exactly
// the OutPayload event's WireLength.
func (a *answerConn) wrote(p []byte) {
	var data int64
	a.mu.Lock()
	for len(p) > 0 {
		if a.left > 0 {
			k := min(a.left, int64(len(p)))
			if a.dataFrm {
				data += k
			}
			a.left -= k
			p = p[k:]
			continue
		}
		k := copy(a.hdr[a.hdrN:], p)
		a.hdrN += k
		p = p[k:]
		if a.hdrN == len(a.hdr) {
			a.left = int64(binary.BigEndian.Uint32(a.hdr[0:4]) >> 8)
			a.dataFrm = a.hdr[3] == 0 // DATA
			a.hdrN = 0
		}
	}
	a.mu.Unlock()
	if data > 0 {
		a.add(-data)
	}
}

// trackedAddr is the remote address of a connection whose answers are
// counted: how the stats handler, which sees only the addresses, finds
// the connection's answerConn.
type trackedAddr struct {
	net.Addr
	answers *answerConn
}

// unwrapAddr returns the address a trackedAddr carries.
func unwrapAddr(a net.Addr) net.Addr {
	if t, ok := a.(*trackedAddr); ok {
		return t.Addr
	}
	return a
}

type answerConnKey struct{}

// answerConnFrom returns the connection's answerConn, if it has one.
func answerConnFrom(ctx context.Context) *answerConn {
	a, _ := ctx.Value(answerConnKey{}).(*answerConn)
	return a
}

// force changes the peer's unsent answer bytes by delta whatever the
// budget: answers already handed over, and their release.
func (in *inflight) force(key string, delta int64) {
	if delta == 0 {
		return
	}
	in.mu.Lock()
	defer in.mu.Unlock()
	in.unsent[key] += delta
	if in.unsent[key] <= 0 {
		delete(in.unsent, key)
	}
}

// stateChanging are the methods whose answer is never refused for the
// budget: the call's work is done and recorded (a signature, a key, a
// trust or policy edit), and the caller must learn of it.
var stateChanging = map[string]bool{
	signerv1.SignerService_Sign_FullMethodName:       true,
	signerv1.SkillService_SignSkill_FullMethodName:   true,
	signerv1.KeyService_CreateKey_FullMethodName:     true,
	signerv1.KeyService_RotateKey_FullMethodName:     true,
	signerv1.KeyService_RevokeKey_FullMethodName:     true,
	signerv1.KeyService_ImportKey_FullMethodName:     true,
	signerv1.TrustService_AddTrust_FullMethodName:    true,
	signerv1.TrustService_RemoveTrust_FullMethodName: true,
	signerv1.TrustService_GrantTrust_FullMethodName:  true,
	signerv1.TrustService_RevokeGrant_FullMethodName: true,
	signerv1.TrustService_SetPolicy_FullMethodName:   true,
}

// reserveAnswer holds room in the peer's budget for a read-only call's
// answer before it is handed to the transport, or refuses the answer when
// the peer's unread answers and requests in flight leave none. The room
// moves to the connection's count when the answer is handed over
// (inflightStats), and the call's end gives back what is left.
func reserveAnswer(ctx context.Context, method string, resp any) error {
	r, ok := ctx.Value(reservationKey{}).(*reservation)
	if !ok || stateChanging[method] {
		return nil
	}
	m, ok := resp.(proto.Message)
	if !ok {
		return nil
	}
	n := int64(proto.Size(m)) + 5
	r.mu.Lock()
	defer r.mu.Unlock()
	if err := r.resizeLocked(r.held+n, true); err != nil {
		return status.Error(codes.ResourceExhausted, fmt.Sprintf("answer refused: %v (answers this peer has not read count too)", err))
	}
	r.answer += n
	return nil
}

// handedOver moves an answer's n bytes from the call's reservation (when
// reserveAnswer made room for it) to its connection's count of unsent
// answers.
func handedOver(ctx context.Context, n int) {
	a := answerConnFrom(ctx)
	if a == nil {
		return
	}
	a.add(int64(n))
	// Only what reserveAnswer reserved moves: a stream's reservation holds
	// its requests' items, not its answers.
	if r, ok := ctx.Value(reservationKey{}).(*reservation); ok {
		r.mu.Lock()
		if k := min(r.answer, int64(n)); k > 0 {
			r.answer -= k
			_ = r.resizeLocked(max(0, r.held-k), false) // shrinking never fails
		}
		r.mu.Unlock()
	}
}
