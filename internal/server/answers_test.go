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
// followed frame by frame however the reads and writes split them; a
// stream's DATA payload written counts against what was handed over, in
// whichever order the two come; the stream's trailers or a reset (the
// server's or the client's) end its count, a late charge of an ended
// stream is ignored, and a closed connection gives back the rest.
func TestAnswerConnCountsData(t *testing.T) {
	var out bytes.Buffer
	fw := http2.NewFramer(&out, nil)
	_ = fw.WriteSettings(http2.Setting{ID: http2.SettingMaxFrameSize, Val: 16384})
	_ = fw.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: bytes.Repeat([]byte{0x88}, 40), EndHeaders: true})
	_ = fw.WriteData(1, false, bytes.Repeat([]byte{0}, 100))
	_ = fw.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: []byte{0x88}, EndHeaders: true, EndStream: true}) // trailers
	_ = fw.WritePing(false, [8]byte{1})
	_ = fw.WriteData(3, false, bytes.Repeat([]byte{9}, 16384))
	_ = fw.WriteData(3, false, bytes.Repeat([]byte{9}, 5000))
	_ = fw.WriteWindowUpdate(0, 1000)
	written := out.Bytes()
	var in bytes.Buffer
	in.WriteString(http2ClientPreface)
	fr := http2.NewFramer(&in, nil)
	_ = fr.WriteSettings()
	_ = fr.WriteRSTStream(5, http2.ErrCodeCancel)
	received := in.Bytes()

	for seed := range uint64(20) {
		budget := newInflight(1<<30, 1<<20)
		a := newAnswerConn(budget, "uid:7")
		r := rand.New(rand.NewPCG(seed, 1))
		_ = a.charge(3, 16384+5000+700, false) // handed over; 700 bytes will never be written
		_ = a.charge(5, 4000, false)           // handed over; the client resets the stream
		if got := budget.unsent["uid:7"]; got != 16384+5000+700+4000 {
			t.Fatalf("handed over: budget holds %d", got)
		}
		feed(r, written, a.wrote)   // stream 1's answer written before it is handed over
		_ = a.charge(1, 100, false) // ...and its late charge ignored: the stream ended
		if got := budget.unsent["uid:7"]; got != 700+4000 {
			t.Fatalf("seed %d: after the writes the budget holds %d, want 4,700", seed, got)
		}
		feed(r, received, a.read) // the client's reset of stream 5
		if got := budget.unsent["uid:7"]; got != 700 {
			t.Fatalf("seed %d: after the client's reset the budget holds %d, want 700", seed, got)
		}
		// A checked charge that does not fit the budget is refused and
		// counts nothing; an unchecked one (a state-changing call's) is
		// counted all the same.
		full := newInflight(1<<20, 1<<20)
		b := newAnswerConn(full, "uid:8")
		if err := b.charge(9, 1<<20, true); err != nil {
			t.Fatalf("a charge that fits: %v", err)
		}
		if err := b.charge(11, 1, true); err == nil || full.unsent["uid:8"] != 1<<20 {
			t.Fatalf("a charge past the budget: %v, budget holds %d", err, full.unsent["uid:8"])
		}
		if err := b.charge(11, 1, false); err != nil || full.unsent["uid:8"] != 1<<20+1 {
			t.Fatalf("an unchecked charge: %v, budget holds %d", err, full.unsent["uid:8"])
		}
		a.end()
		_ = a.charge(7, 50, false) // nothing is counted after the end
		if len(budget.unsent) != 0 {
			t.Fatalf("seed %d: after the close the budget holds %v", seed, budget.unsent)
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
