package server

import (
	"context"
	"encoding/binary"
	"fmt"
	"net"
	"reflect"
	"sync"

	"google.golang.org/grpc"
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
// So the bytes of every unary answer count against the same per-peer
// budget (reqlimits.go), on the answer's HTTP/2 stream, from when the
// unary chain returns it (reserveAnswer) until the transport has written
// them (the stream's DATA frames, counted as they are written), the
// stream is reset (gRPC then drops its queued answer: the server's
// RST_STREAM written, or the client's read), or the connection closes. A
// peer whose unread answers fill its budget gets its new calls refused at
// once, RESOURCE_EXHAUSTED, like one whose requests fill it. A read-only
// call's answer that does not fit is refused; a call that changed state
// (a signature, a key, a trust edit) always gets its answer, counted
// whatever the budget says: its work is done and recorded, and these
// answers are small. Streams' answers are not counted: SignBatch's are
// bounded by its window and gRPC's per-stream write quota, and
// SignSkillStream's is one answer to a caller who may sign.

// answerConn counts, for one connection, the answer bytes counted and not
// yet written, stream by stream, and holds them in the peer's budget.
// Only streams the client has opened (its HEADERS on a new stream ID, as
// read) are counted; a stream's count ends when its trailers or a reset
// are written, or the client's reset of it is read: gRPC drops a reset
// stream's queued answer, which will never be written.
type answerConn struct {
	in  *inflight
	key string

	mu    sync.Mutex
	ended bool
	// streams holds the open streams: per stream, its answer bytes
	// counted minus those written, never below 0. Only streams in it are
	// counted, so a reset sent for a stream before opening it, or a
	// charge after a stream ended, counts nothing.
	streams map[uint32]int64
	// opened is the highest stream ID the client has opened: a HEADERS
	// frame on a lower one is trailers, not a new stream.
	opened uint32
	// The two directions of the connection, frame by frame.
	out, inb frameCursor
}

// frameCursor follows one direction of an HTTP/2 connection: the frame
// header being read, as far as it has come, the frame's payload still to
// come, and bytes to skip first (the client's connection preface).
type frameCursor struct {
	hdr  [9]byte
	hdrN int
	left int64
	skip int
	// Of the frame whose payload is passing: DATA, and its stream.
	data   bool
	stream uint32
}

// HTTP/2 frame types and flags (RFC 9113, section 6).
const (
	frameData      = 0x0
	frameHeaders   = 0x1
	frameRSTStream = 0x3
	flagEndStream  = 0x1
)

func newAnswerConn(in *inflight, key string) *answerConn {
	return &answerConn{in: in, key: key, streams: map[uint32]int64{}, inb: frameCursor{skip: len(http2ClientPreface)}}
}

// http2ClientPreface starts what a client sends (RFC 9113, section 3.4).
const http2ClientPreface = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"

// charge counts n answer bytes of stream id about to be queued; with
// check, it fails instead when they do not fit the peer's budget.
func (a *answerConn) charge(id uint32, n int64, check bool) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	v, open := a.streams[id]
	if a.ended || !open {
		return nil // the stream is gone: its answer will be dropped
	}
	if err := a.in.add(a.key, n, check); err != nil {
		return err
	}
	a.streams[id] = v + n
	return nil
}

// writtenLocked counts k bytes of stream id's answer written.
func (a *answerConn) writtenLocked(id uint32, k int64) {
	v, open := a.streams[id]
	if !open {
		return
	}
	k = min(k, v)
	a.streams[id] = v - k
	_ = a.in.add(a.key, -k, false)
}

// finishLocked ends stream id's count: its answer is written, or will
// never be.
func (a *answerConn) finishLocked(id uint32) {
	if v, open := a.streams[id]; open {
		_ = a.in.add(a.key, -v, false)
		delete(a.streams, id)
	}
}

// end gives everything back: the connection is closed, and with it every
// answer it held.
func (a *answerConn) end() {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.ended {
		return
	}
	for id := range a.streams {
		a.finishLocked(id)
	}
	a.ended = true
}

// wrote follows what the server writes (frames of 9 bytes of header and
// their payload; the server sends no preface): a DATA frame's payload is
// answer bytes of its stream written (gRPC sends no padding); HEADERS
// ending the stream (the trailers) or RST_STREAM end the stream's count.
func (a *answerConn) wrote(p []byte) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.follow(&a.out, p, func(c *frameCursor, k int64) {
		if !a.ended && c.data {
			a.writtenLocked(c.stream, k)
		}
	}, func(typ, flags byte, id uint32) {
		if !a.ended && id != 0 && (typ == frameRSTStream || typ == frameHeaders && flags&flagEndStream != 0) {
			a.finishLocked(id)
		}
	})
}

// read follows what the client sends (its preface, then frames): HEADERS
// on a new stream ID opens a stream; its RST_STREAM ends the stream's
// count, since gRPC then drops whatever of the stream's answer is still
// queued.
func (a *answerConn) read(p []byte) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.follow(&a.inb, p, nil, func(typ, _ byte, id uint32) {
		switch {
		case a.ended || id == 0:
		case typ == frameHeaders && id > a.opened:
			a.opened = id
			a.streams[id] = 0
		case typ == frameRSTStream:
			a.finishLocked(id)
		}
	})
}

// follow advances c over p, calling payload for each run of a frame's
// payload and header for each frame header completed.
func (a *answerConn) follow(c *frameCursor, p []byte, payload func(*frameCursor, int64), header func(typ, flags byte, id uint32)) {
	for len(p) > 0 {
		if c.skip > 0 {
			k := min(c.skip, len(p))
			c.skip -= k
			p = p[k:]
			continue
		}
		if c.left > 0 {
			k := min(c.left, int64(len(p)))
			if payload != nil {
				payload(c, k)
			}
			c.left -= k
			p = p[k:]
			continue
		}
		k := copy(c.hdr[c.hdrN:], p)
		c.hdrN += k
		p = p[k:]
		if c.hdrN < len(c.hdr) {
			continue
		}
		c.hdrN = 0
		c.left = int64(binary.BigEndian.Uint32(c.hdr[0:4]) >> 8)
		typ, flags := c.hdr[3], c.hdr[4]
		c.stream = binary.BigEndian.Uint32(c.hdr[5:9]) & 0x7fffffff
		c.data = typ == frameData
		header(typ, flags, c.stream)
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

// add changes the peer's unsent answer bytes by delta; with check, an
// increase fails instead when it does not fit the peer's budget (its
// requests in flight and unsent answers counted), under the same lock.
func (in *inflight) add(key string, delta int64, check bool) error {
	if delta == 0 {
		return nil
	}
	in.mu.Lock()
	defer in.mu.Unlock()
	if check && delta > 0 && in.used[key]+in.unsent[key]+delta > in.perPeer {
		return in.overBudgetLocked(key, in.unsent[key])
	}
	in.unsent[key] += delta
	if in.unsent[key] <= 0 {
		delete(in.unsent, key)
	}
	return nil
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

// reserveAnswer counts a unary call's answer on its stream before gRPC
// queues it, or refuses a read-only call's answer, RESOURCE_EXHAUSTED,
// when the peer's requests in flight and unread answers leave no room for
// it; a call that changed state always gets its answer (counted). The
// count ends when the answer is written, the stream is reset, or the
// connection closes (answerConn). A stream's answers (SignBatch) are not
// counted: its window and gRPC's per-stream write quota bound them.
func reserveAnswer(ctx context.Context, method string, resp any) error {
	a := answerConnFrom(ctx)
	m, ok := resp.(proto.Message)
	if a == nil || !ok || method == healthCheck {
		return nil
	}
	id, ok := streamID(ctx)
	if !ok {
		return nil
	}
	if err := a.charge(id, int64(proto.Size(m))+5, !stateChanging[method]); err != nil {
		return status.Error(codes.ResourceExhausted, fmt.Sprintf("answer refused: %v", err))
	}
	return nil
}

// streamID is the HTTP/2 stream of a server call. gRPC does not export
// it; its transport stream (grpc.ServerTransportStreamFromContext) carries
// it in an unexported field, read here by reflection, only as a number.
// If a gRPC release moves it, ok is false and answers go uncounted;
// TestStreamID fails first.
func streamID(ctx context.Context) (id uint32, ok bool) {
	st := grpc.ServerTransportStreamFromContext(ctx)
	if st == nil {
		return 0, false
	}
	v := reflect.ValueOf(st)
	if v.Kind() != reflect.Pointer || v.IsNil() {
		return 0, false
	}
	index, ok := streamIDIndex(v.Type().Elem())
	if !ok {
		return 0, false
	}
	return uint32(v.Elem().FieldByIndex(index).Uint()), true
}

// streamIDIndexes caches, per transport stream type, where its ID is
// (the field lookup by name costs more than the rest of streamID).
var streamIDIndexes sync.Map // reflect.Type → []int, or nil when it has none

func streamIDIndex(t reflect.Type) ([]int, bool) {
	if v, ok := streamIDIndexes.Load(t); ok {
		index, _ := v.([]int)
		return index, index != nil
	}
	var index []int
	if t.Kind() == reflect.Struct {
		if s, ok := t.FieldByName("Stream"); ok && s.Type.Kind() == reflect.Struct {
			if f, ok := s.Type.FieldByName("id"); ok && f.Type.Kind() == reflect.Uint32 {
				index = append(append([]int(nil), s.Index...), f.Index...)
			}
		}
	}
	streamIDIndexes.Store(t, index)
	return index, index != nil
}
