package softhsmtest

import (
	"crypto/sha256"
	"fmt"
	"io"
	"strings"
	"testing"

	"github.com/signerd/signerd/client"
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
	bad := map[int]string{7: "INVALID_ARGUMENT", 150: "KEY_NOT_FOUND"}
	go func() {
		for i, dg := range digests {
			req := &signerv1.SignRequest{KeyName: "release", Digest: dg, ArtifactName: fmt.Sprintf("a%d", i)}
			switch i {
			case 7:
				req.Digest = dg[:10]
			case 150:
				req.KeyName = "missing"
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
