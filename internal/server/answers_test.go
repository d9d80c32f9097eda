package server

import (
	"bytes"
	"context"
	"math/rand/v2"
	"net"
	"testing"

	"golang.org/x/net/http2"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	"google.golang.org/grpc/health/grpc_health_v1"
)

// feed gives p to f in random pieces.
func feed(r *rand.Rand, p []byte, f func([]byte)) {
	for len(p) > 0 {
		n := 1 + r.IntN(min(len(p), 3000))
		f(p[:n])
		p = p[n:]
	}
}

// TestAnswerConnCountsData: both directions of the HTTP/2 connection are
// followed frame by frame however the reads and writes split them. Only
// streams the client opened are counted; a stream's DATA written counts
// against its answer; the stream's trailers or a reset (the server's or
// the client's) end its count; a reset sent before a stream is opened,
// and a charge after a stream ended, count nothing; a closed connection
// gives back the rest.
func TestAnswerConnCountsData(t *testing.T) {
	var in bytes.Buffer
	in.WriteString(http2ClientPreface)
	fr := http2.NewFramer(&in, nil)
	_ = fr.WriteSettings()
	_ = fr.WriteRSTStream(9, http2.ErrCodeCancel) // before stream 9 is opened: ignored
	for _, id := range []uint32{1, 3, 5, 7, 9} {
		_ = fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: bytes.Repeat([]byte{0x88}, 30), EndHeaders: true})
		_ = fr.WriteData(id, true, bytes.Repeat([]byte{1}, 200))
	}
	opened := append([]byte(nil), in.Bytes()...)
	in.Reset()
	fr = http2.NewFramer(&in, nil)
	_ = fr.WriteRSTStream(5, http2.ErrCodeCancel)
	resetByClient := append([]byte(nil), in.Bytes()...)

	var out bytes.Buffer
	fw := http2.NewFramer(&out, nil)
	_ = fw.WriteSettings(http2.Setting{ID: http2.SettingMaxFrameSize, Val: 16384})
	_ = fw.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: bytes.Repeat([]byte{0x88}, 40), EndHeaders: true})
	_ = fw.WriteData(1, false, bytes.Repeat([]byte{0}, 100))
	_ = fw.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: []byte{0x88}, EndHeaders: true, EndStream: true}) // trailers
	_ = fw.WritePing(false, [8]byte{1})
	_ = fw.WriteData(3, false, bytes.Repeat([]byte{9}, 16384))
	_ = fw.WriteData(3, false, bytes.Repeat([]byte{9}, 5000))
	_ = fw.WriteRSTStream(7, http2.ErrCodeInternal) // the server resets stream 7
	_ = fw.WriteWindowUpdate(0, 1000)
	written := out.Bytes()

	for seed := range uint64(20) {
		budget := newInflight(1<<30, 1<<20)
		a := newAnswerConn(budget, "uid:7")
		r := rand.New(rand.NewPCG(seed, 1))
		_ = a.charge(11, 999, false) // never opened: not counted
		feed(r, opened, a.read)
		_ = a.charge(1, 100, false)
		_ = a.charge(3, 16384+5000+700, false) // 700 bytes will never be written
		_ = a.charge(5, 4000, false)           // the client resets stream 5
		_ = a.charge(7, 300, false)            // the server resets stream 7
		_ = a.charge(9, 50, false)             // the early reset did not end stream 9
		if got := budget.unsent["uid:7"]; got != 100+16384+5000+700+4000+300+50 {
			t.Fatalf("seed %d: counted: budget holds %d", seed, got)
		}
		feed(r, written, a.wrote)
		_ = a.charge(1, 100, false) // after its trailers: not counted
		if got := budget.unsent["uid:7"]; got != 700+4000+50 {
			t.Fatalf("seed %d: after the writes the budget holds %d, want 4,750", seed, got)
		}
		feed(r, resetByClient, a.read)
		if got := budget.unsent["uid:7"]; got != 700+50 {
			t.Fatalf("seed %d: after the client's reset the budget holds %d, want 750", seed, got)
		}
		// A checked charge that does not fit the budget is refused and
		// counts nothing; an unchecked one (a state-changing call's) is
		// counted all the same.
		full := newInflight(1<<20, 1<<20)
		b := newAnswerConn(full, "uid:8")
		feed(r, opened, b.read)
		if err := b.charge(1, 1<<20, true); err != nil {
			t.Fatalf("a charge that fits: %v", err)
		}
		if err := b.charge(3, 1, true); err == nil || full.unsent["uid:8"] != 1<<20 {
			t.Fatalf("a charge past the budget: %v, budget holds %d", err, full.unsent["uid:8"])
		}
		if err := b.charge(3, 1, false); err != nil || full.unsent["uid:8"] != 1<<20+1 {
			t.Fatalf("an unchecked charge: %v, budget holds %d", err, full.unsent["uid:8"])
		}
		a.end()
		_ = a.charge(9, 50, false) // nothing is counted after the end
		if len(budget.unsent) != 0 || len(a.streams) != 0 {
			t.Fatalf("seed %d: after the close the budget holds %v, streams %v", seed, budget.unsent, a.streams)
		}
	}
}

// TestStreamID: the HTTP/2 stream of a server call is found in its
// context. It is read from gRPC's unexported transport stream: a gRPC
// release that moves it fails here, not silently in the daemon.
func TestStreamID(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ids := make(chan uint32, 4)
	gs := grpc.NewServer(grpc.UnaryInterceptor(func(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
		id, ok := streamID(ctx)
		if !ok {
			t.Error("streamID: not found")
		}
		ids <- id
		return h(ctx, req)
	}))
	grpc_health_v1.RegisterHealthServer(gs, health.NewServer())
	go gs.Serve(l)
	defer gs.Stop()
	conn, err := grpc.NewClient(l.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	hc := grpc_health_v1.NewHealthClient(conn)
	for want := uint32(1); want <= 5; want += 2 {
		if _, err := hc.Check(context.Background(), &grpc_health_v1.HealthCheckRequest{}); err != nil {
			t.Fatal(err)
		}
		if got := <-ids; got != want {
			t.Fatalf("stream ID %d, want %d (client streams are odd, in order)", got, want)
		}
	}
}
