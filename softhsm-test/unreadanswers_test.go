package softhsmtest

import (
	"bufio"
	"bytes"
	"context"
	"net"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
	"google.golang.org/protobuf/proto"

	signerv1 "github.com/signerd/signerd/gen/signer/v1"
)

// TestUnreadAnswersBounded: a client that never reads its answers (an
// HTTP/2 stream window of 0) cannot make the daemon hold them beyond its
// budget. Before, each answer waited in the transport for window the
// client never granted, outside any bound (about 1 MiB held per 60 KB
// GetDiscovery, gigabytes from one uid); now unread answers count against
// the peer's --max-inflight-bytes-per-peer, and once they fill it the
// peer's calls are refused RESOURCE_EXHAUSTED. Closing the connection
// gives the budget back. Each call is sent after the one before it is
// answered, so without the bound none would be refused.
func TestUnreadAnswersBounded(t *testing.T) {
	d := startDaemon(t, "--max-inflight-bytes-per-peer", "4MiB")
	mustSignctl(t, d, "key", "create", "skills", "--algorithm", "ecdsa-p256", "--org", "example.com")
	// json escapes '<' as \u003c: a 60 KB request, a 360 KB answer.
	req, err := proto.Marshal(&signerv1.GetDiscoveryRequest{KeyName: "skills", DeveloperName: strings.Repeat("<", 60<<10)})
	if err != nil {
		t.Fatal(err)
	}
	nc, err := net.Dial("unix", d.socket)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	_ = nc.SetDeadline(time.Now().Add(2 * time.Minute)) // a bound on a hang
	bw := bufio.NewWriter(nc)
	bw.WriteString(http2.ClientPreface)
	fr := http2.NewFramer(bw, nc)
	fr.ReadMetaHeaders = hpack.NewDecoder(4096, nil)
	fr.MaxHeaderListSize = 1 << 20
	// No window for any stream, ever: the daemon can send headers, not
	// answers.
	if err := fr.WriteSettings(http2.Setting{ID: http2.SettingInitialWindowSize, Val: 0}); err != nil {
		t.Fatal(err)
	}
	var hb bytes.Buffer
	enc := hpack.NewEncoder(&hb)
	const calls = 40
	answered, refused := 0, 0
	var callPath func(i int, id uint32, path string, req []byte) string
	// call sends GetDiscovery on stream id and returns the grpc-status of
	// its first HEADERS: "" for the answer's own (its DATA then waits for
	// window), or the refusal's.
	call := func(i int, id uint32) string {
		return callPath(i, id, signerv1.SkillService_GetDiscovery_FullMethodName, req)
	}
	callPath = func(i int, id uint32, path string, req []byte) string {
		hb.Reset()
		for _, kv := range [][2]string{{":method", "POST"}, {":scheme", "http"}, {":path", path},
			{":authority", "localhost"}, {"content-type", "application/grpc"}, {"te", "trailers"}} {
			_ = enc.WriteField(hpack.HeaderField{Name: kv[0], Value: kv[1]})
		}
		if err := fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: hb.Bytes(), EndHeaders: true}); err != nil {
			t.Fatal(err)
		}
		body := append([]byte{0, byte(len(req) >> 24), byte(len(req) >> 16), byte(len(req) >> 8), byte(len(req))}, req...)
		for off := 0; off < len(body); off += 16384 {
			if err := fr.WriteData(id, off+16384 >= len(body), body[off:min(off+16384, len(body))]); err != nil {
				t.Fatal(err)
			}
		}
		if err := bw.Flush(); err != nil {
			t.Fatal(err)
		}
		for {
			f, err := fr.ReadFrame()
			if err != nil {
				t.Fatalf("call %d: reading: %v", i, err)
			}
			switch f := f.(type) {
			case *http2.SettingsFrame:
				if !f.IsAck() {
					_ = fr.WriteSettingsAck()
					_ = bw.Flush()
				}
			case *http2.MetaHeadersFrame:
				if f.StreamID != id {
					continue
				}
				if f.PseudoValue("status") != "200" {
					t.Fatalf("call %d: HTTP status %q", i, f.PseudoValue("status"))
				}
				for _, h := range f.Fields {
					if h.Name == "grpc-status" {
						return h.Value
					}
				}
				return ""
			case *http2.RSTStreamFrame:
				if f.StreamID == id {
					t.Fatalf("call %d reset: %v", i, f.ErrCode)
				}
			case *http2.GoAwayFrame:
				t.Fatalf("call %d: GOAWAY %v", i, f.ErrCode)
			}
		}
	}
	var pending []uint32
	for i := range calls {
		id := uint32(2*i + 1)
		switch st := call(i, id); st {
		case "": // the answer, waiting to be read
			answered++
			pending = append(pending, id)
		case "8": // RESOURCE_EXHAUSTED
			refused++
		default:
			t.Fatalf("call %d: grpc-status %s", i, st)
		}
	}
	// 4 MiB holds about eleven 360 KB answers (less what the next call's
	// request reserves); the rest are refused.
	if answered < 1 || answered > 16 || refused != calls-answered {
		t.Fatalf("%d calls whose answers were never read: %d answered, %d refused; want at most 16 answered, the rest refused", calls, answered, refused)
	}
	t.Logf("%d calls, answers never read: %d answered, %d refused RESOURCE_EXHAUSTED", calls, answered, refused)
	// A health probe is outside the budget: the peer's spent budget is
	// not the daemon being down.
	if st := callPath(calls, uint32(2*calls+1), "/grpc.health.v1.Health/Check", nil); st != "" {
		t.Fatalf("a health check with the budget spent: grpc-status %s, want its answer", st)
	}
	// The client gives up on them (RST_STREAM, as on a deadline): gRPC
	// drops their answers, and the budget comes back on this connection.
	for _, id := range pending {
		if err := fr.WriteRSTStream(id, http2.ErrCodeCancel); err != nil {
			t.Fatal(err)
		}
	}
	if err := bw.Flush(); err != nil {
		t.Fatal(err)
	}
	if st := call(calls+1, uint32(2*calls+3)); st != "" {
		t.Fatalf("after resetting the unread answers' streams, a call on the connection: grpc-status %s, want its answer", st)
	}
	nc.Close()

	// The connection's answers are given back when it closes: the same
	// peer is served again (waiting for the daemon to see the close, not
	// for a time).
	c := relDial(t, d)
	deadline := time.Now().Add(30 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		_, err := c.Skills.GetDiscovery(ctx, &signerv1.GetDiscoveryRequest{KeyName: "skills", DeveloperName: strings.Repeat("<", 60<<10)})
		cancel()
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after the connection closed, GetDiscovery still fails: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
