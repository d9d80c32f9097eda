package server

import (
	"bytes"
	"math/rand/v2"
	"testing"

	"golang.org/x/net/http2"
)

// TestAnswerConnCountsData: the HTTP/2 stream a connection writes is
// followed frame by frame however the writes split it, and exactly the
// DATA frames' payload counts as answer bytes written; answers handed
// over hold their bytes in the peer's budget until written, whichever of
// the two comes first, and a closed connection gives back the rest.
func TestAnswerConnCountsData(t *testing.T) {
	var buf bytes.Buffer
	fr := http2.NewFramer(&buf, nil)
	_ = fr.WriteSettings(http2.Setting{ID: http2.SettingMaxFrameSize, Val: 16384})
	_ = fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: bytes.Repeat([]byte{0x88}, 40), EndHeaders: true})
	_ = fr.WriteData(1, false, bytes.Repeat([]byte{0}, 100))
	_ = fr.WritePing(false, [8]byte{1})
	_ = fr.WriteData(3, false, bytes.Repeat([]byte{9}, 16384))
	_ = fr.WriteData(3, true, bytes.Repeat([]byte{9}, 5000))
	_ = fr.WriteWindowUpdate(0, 1000)
	stream := buf.Bytes()
	const data = 100 + 16384 + 5000

	for seed := range uint64(20) {
		in := newInflight(1<<30, 1<<20)
		a := &answerConn{in: in, key: "uid:7"}
		a.add(data - 100) // two answers handed over before they are written
		if in.unsent["uid:7"] != data-100 {
			t.Fatalf("handed over: budget holds %d", in.unsent["uid:7"])
		}
		r := rand.New(rand.NewPCG(seed, 1))
		for p := stream; len(p) > 0; {
			n := 1 + r.IntN(min(len(p), 3000))
			a.wrote(p[:n])
			p = p[n:]
		}
		// The 100-byte answer was written before it was handed over.
		if a.unsent != -100 || in.unsent["uid:7"] != 0 {
			t.Fatalf("seed %d: after writing everything, unsent %d, budget holds %d", seed, a.unsent, in.unsent["uid:7"])
		}
		a.add(100)
		if a.unsent != 0 || len(in.unsent) != 0 {
			t.Fatalf("seed %d: unsent %d, budget %v", seed, a.unsent, in.unsent)
		}
		a.add(700) // handed over, never written: the close gives it back
		a.end()
		a.add(50) // nothing is counted after the end
		if len(in.unsent) != 0 {
			t.Fatalf("seed %d: after the close the budget holds %v", seed, in.unsent)
		}
	}
}
