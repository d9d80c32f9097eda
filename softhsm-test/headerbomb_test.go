package softhsmtest

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"net"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
	"google.golang.org/protobuf/proto"

	"google.golang.org/grpc/health/grpc_health_v1"
)

// TestHeaderListBound: a call's request headers are bounded as decoded,
// not as sent. HPACK lets a caller enter a large header in the
// connection's table once and then name it with one byte per repeat; with
// gRPC's default bound (16 MiB) a 12 MB "-bin" header list cost about
// 8 KB on the wire and was held, decoded, for the stream's life, before
// any authorization or request budget (an unprivileged caller pinned
// gigabytes with a few hundred streams). The daemon now resets such a
// stream, and the same call with ordinary headers is answered.
func TestHeaderListBound(t *testing.T) {
	d := startDaemon(t)
	val := base64.RawStdEncoding.EncodeToString(bytes.Repeat([]byte{0xab}, 3000))
	for _, tc := range []struct {
		name    string
		repeats int
		refused bool
	}{
		{"ordinary headers", 0, false},
		{"one large header", 1, false},                     // 4 KB: a big token is fine
		{"the large header named 4,000 times", 4000, true}, // 16 MB decoded, 8 KB sent
	} {
		t.Run(tc.name, func(t *testing.T) {
			refused, wire := rawHealthCheck(t, d.socket, val, tc.repeats)
			if refused != tc.refused {
				t.Fatalf("refused %t, want %t (%d header bytes sent)", refused, tc.refused, wire)
			}
		})
	}
	if r := signctl(t, d, "key", "list"); r.code != 0 {
		t.Fatalf("the daemon after the header bomb: exit %d %s", r.code, r.stderr)
	}
}

// rawHealthCheck sends one grpc.health.v1 Check over a raw HTTP/2
// connection whose request headers carry an "x-pad-bin" header repeats
// times (all but the first as an HPACK table reference) and reports
// whether the daemon reset the stream rather than answer it.
func rawHealthCheck(t *testing.T, socket, val string, repeats int) (refused bool, wire int) {
	t.Helper()
	nc, err := net.Dial("unix", socket)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	// A bound on a hang, not a timing assertion: the daemon answers at once.
	_ = nc.SetDeadline(time.Now().Add(30 * time.Second))
	bw := bufio.NewWriter(nc)
	bw.WriteString(http2.ClientPreface)
	fr := http2.NewFramer(bw, nc)
	if err := fr.WriteSettings(); err != nil {
		t.Fatal(err)
	}
	var hb bytes.Buffer
	enc := hpack.NewEncoder(&hb)
	for _, kv := range [][2]string{{":method", "POST"}, {":scheme", "http"}, {":path", grpc_health_v1.Health_Check_FullMethodName},
		{":authority", "localhost"}, {"content-type", "application/grpc"}, {"te", "trailers"}} {
		_ = enc.WriteField(hpack.HeaderField{Name: kv[0], Value: kv[1]})
	}
	for range repeats {
		_ = enc.WriteField(hpack.HeaderField{Name: "x-pad-bin", Value: val})
	}
	blk := hb.Bytes()
	wire = len(blk)
	const stream = 1
	first := min(len(blk), 16384)
	if err := fr.WriteHeaders(http2.HeadersFrameParam{StreamID: stream, BlockFragment: blk[:first], EndHeaders: first == len(blk)}); err != nil {
		t.Fatal(err)
	}
	for off := first; off < len(blk); off += 16384 {
		end := min(off+16384, len(blk))
		if err := fr.WriteContinuation(stream, end == len(blk), blk[off:end]); err != nil {
			t.Fatal(err)
		}
	}
	msg, err := proto.Marshal(&grpc_health_v1.HealthCheckRequest{})
	if err != nil {
		t.Fatal(err)
	}
	body := append([]byte{0, 0, 0, 0, byte(len(msg))}, msg...)
	if err := fr.WriteData(stream, true, body); err != nil {
		t.Fatal(err)
	}
	if err := bw.Flush(); err != nil {
		t.Fatal(err)
	}
	fr.ReadMetaHeaders = hpack.NewDecoder(4096, nil)
	for {
		f, err := fr.ReadFrame()
		if err != nil {
			t.Fatalf("reading the daemon's answer: %v", err)
		}
		switch f := f.(type) {
		case *http2.RSTStreamFrame:
			if f.StreamID == stream {
				return true, wire
			}
		case *http2.GoAwayFrame:
			return true, wire
		case *http2.MetaHeadersFrame:
			if f.StreamID != stream {
				continue
			}
			for _, h := range f.Fields {
				if h.Name == "grpc-status" {
					if h.Value != "0" {
						t.Fatalf("answered grpc-status %s, want a reset or OK", h.Value)
					}
					return false, wire
				}
			}
		}
	}
}
