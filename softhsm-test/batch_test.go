package softhsmtest

import (
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/signerd/signerd/client"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	signerv1 "github.com/signerd/signerd/gen/signer/v1"
	"github.com/signerd/signerd/internal/pkgsig"
)

// TestSignBatch: results come back in request order, a bad item fails
// alone with the unary call's reason, and every signed item is recorded.
func TestSignBatch(t *testing.T) {
	d := startDaemon(t)
	mustSignctl(t, d, "key", "create", "release")
	mustSignctl(t, d, "trust", "add", "--org", "acme", "--key", "release")
	c, err := client.DialUnix(d.socket)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	stream, err := c.Signer.SignBatch(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	const n = 300
	digests := make([][]byte, n)
	for i := range digests {
		sum := sha256.Sum256([]byte(fmt.Sprintf("artifact %d", i)))
		digests[i] = sum[:]
	}
	// Item 200 is larger than a unary Sign request may be: refused alone,
	// RESOURCE_EXHAUSTED as the unary call would be (no reason).
	bad := map[int]string{7: "INVALID_ARGUMENT", 150: "KEY_NOT_FOUND", 200: ""}
	go func() {
		for i, dg := range digests {
			req := &signerv1.SignRequest{KeyName: "release", Digest: dg, ArtifactName: fmt.Sprintf("a%d", i)}
			switch i {
			case 7:
				req.Digest = dg[:10]
			case 150:
				req.KeyName = "missing"
			case 200:
				req.ArtifactName = strings.Repeat("a", 65<<10)
			}
			if err := stream.Send(&signerv1.SignBatchRequest{Request: req}); err != nil {
				return
			}
		}
		stream.CloseSend()
	}()
	for i := 0; i < n; i++ {
		resp, err := stream.Recv()
		if err != nil {
			t.Fatalf("item %d: %v", i, err)
		}
		if want, isBad := bad[i]; isBad {
			if resp.GetError().GetReason() != want || resp.GetResponse() != nil {
				t.Fatalf("item %d: %v, want error %s", i, resp, want)
			}
			if i == 200 && (resp.GetError().GetCode() != int32(codes.ResourceExhausted) || !strings.Contains(resp.GetError().GetMessage(), "per item")) {
				t.Fatalf("item %d: %v, want RESOURCE_EXHAUSTED for its size", i, resp)
			}
			continue
		}
		sig, err := pkgsig.Parse(resp.GetResponse().GetSignatureDocument())
		if err != nil {
			t.Fatalf("item %d: %v", i, err)
		}
		if string(sig.Digest[:]) != string(digests[i]) {
			t.Fatalf("item %d answered out of order", i)
		}
	}
	if _, err := stream.Recv(); err != io.EOF {
		t.Fatalf("stream end: %v", err)
	}
	// Each signed item is in the daemon's records.
	for i := 0; i < n; i += 37 {
		if _, isBad := bad[i]; isBad {
			continue
		}
		resp, err := c.Signer.Verify(t.Context(), &signerv1.VerifyRequest{Org: "acme", Digest: digests[i]})
		if err != nil || !resp.GetVerified() {
			t.Fatalf("item %d not recorded: %v %v", i, resp, err)
		}
	}
	if !strings.Contains(d.logs.String(), "signerd serving") {
		t.Fatal("daemon log missing")
	}
}

// TestSignBatchItemBudget: a SignBatch item is charged to its peer's
// request budget until it is signed. With a budget of one stream's
// reservation plus 32 KiB, every 40 KiB item is refused at once,
// RESOURCE_EXHAUSTED, small items beside them are signed, and each item
// gives its bytes back once signed: a second stream signs 600 small items,
// more bytes together (~150 KiB) than the 32 KiB left.
func TestSignBatchItemBudget(t *testing.T) {
	d := startDaemon(t, "--max-inflight-bytes-per-peer", "1056KiB")
	mustSignctl(t, d, "key", "create", "release")
	c, err := client.DialUnix(d.socket)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for round := range 2 {
		// gRPC ends a call (and gives its reservation back) just after the
		// client has its status, so the first stream may still hold its
		// 1 MiB when the second opens: that open is refused whole, before
		// any item is answered, and is tried again.
		for attempt := 0; ; attempt++ {
			answered, err := budgetRound(t, c, round)
			if err == nil {
				break
			}
			if answered > 0 || status.Code(err) != codes.ResourceExhausted || attempt == 100 {
				t.Fatalf("round %d, item %d: %v", round, answered, err)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
}

// budgetRound sends TestSignBatchItemBudget's round on one stream and
// checks every answer; it returns how many items were answered and the
// first stream error.
func budgetRound(t *testing.T, c *client.Client, round int) (int, error) {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	stream, err := c.Signer.SignBatch(ctx)
	if err != nil {
		return 0, err
	}
	n := []int{60, 600}[round]
	big := func(i int) bool { return round == 0 && i%3 == 1 }
	go func() {
		for i := range n {
			sum := sha256.Sum256([]byte(fmt.Sprintf("budget %d %d", round, i)))
			req := &signerv1.SignRequest{KeyName: "release", Digest: sum[:], ArtifactName: fmt.Sprintf("%0200d", i)}
			if big(i) {
				req.ArtifactName = strings.Repeat("b", 40<<10)
			}
			if err := stream.Send(&signerv1.SignBatchRequest{Request: req}); err != nil {
				return
			}
		}
		stream.CloseSend()
	}()
	for i := range n {
		resp, err := stream.Recv()
		if err != nil {
			return i, err
		}
		if big(i) {
			if resp.GetError().GetCode() != int32(codes.ResourceExhausted) || !strings.Contains(resp.GetError().GetMessage(), "in flight") {
				t.Fatalf("round %d item %d (40 KiB): %v, want RESOURCE_EXHAUSTED for the peer's budget", round, i, resp)
			}
			continue
		}
		if resp.GetResponse() == nil {
			t.Fatalf("round %d item %d: %v, want a signature", round, i, resp)
		}
	}
	if _, err := stream.Recv(); err != io.EOF {
		t.Fatalf("round %d stream end: %v", round, err)
	}
	return n, nil
}
