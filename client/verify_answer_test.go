package client_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"net"
	"path/filepath"
	"testing"
	"time"

	"google.golang.org/grpc"

	"github.com/signerd/signerd/client"
	signerv1 "github.com/signerd/signerd/gen/signer/v1"
)

// answerServer answers every Verify with resp.
type answerServer struct {
	signerv1.UnimplementedSignerServiceServer
	resp *signerv1.VerifyResponse
}

func (s *answerServer) Verify(context.Context, *signerv1.VerifyRequest) (*signerv1.VerifyResponse, error) {
	return s.resp, nil
}

// TestVerifyFailsClosedOnAnotherAnswer: an answer that is not about the
// digest asked for, or whose outcome the client does not know, admits
// nothing, whatever else it says.
func TestVerifyFailsClosedOnAnotherAnswer(t *testing.T) {
	digest := sha256.Sum256([]byte("the package"))
	other := sha256.Sum256([]byte("another package"))
	for _, tc := range []struct {
		name string
		resp *signerv1.VerifyResponse
		ok   bool
	}{
		{"the same package", &signerv1.VerifyResponse{Outcome: signerv1.VerifyOutcome_VERIFY_OUTCOME_VERIFIED, Verified: true, PackageHash: hex.EncodeToString(digest[:])}, true},
		{"another package", &signerv1.VerifyResponse{Outcome: signerv1.VerifyOutcome_VERIFY_OUTCOME_VERIFIED, Verified: true, PackageHash: hex.EncodeToString(other[:])}, false},
		{"no package hash", &signerv1.VerifyResponse{Outcome: signerv1.VerifyOutcome_VERIFY_OUTCOME_VERIFIED, Verified: true}, false},
		{"no outcome", &signerv1.VerifyResponse{Verified: true, PackageHash: hex.EncodeToString(digest[:])}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sock := filepath.Join(t.TempDir(), "s.sock")
			l, err := net.Listen("unix", sock)
			if err != nil {
				t.Fatal(err)
			}
			g := grpc.NewServer()
			signerv1.RegisterSignerServiceServer(g, &answerServer{resp: tc.resp})
			go g.Serve(l)
			defer g.Stop()
			c, err := client.DialUnix(sock)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			v, err := c.Verify(ctx, "acme", digest, nil)
			switch {
			case tc.ok && err != nil:
				t.Fatalf("Verify: %v", err)
			case !tc.ok && (err == nil || !errors.Is(err, client.ErrInternal)):
				t.Fatalf("Verify = %+v, %v; want ErrInternal", v, err)
			}
		})
	}
}
