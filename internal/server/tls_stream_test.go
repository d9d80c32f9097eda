//go:build cgo

package server

import (
	"context"
	"crypto/sha256"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/connectivity"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/status"

	signerv1 "github.com/signerd/signerd/gen/signer/v1"
	"github.com/signerd/signerd/internal/keystore"
	"github.com/signerd/signerd/internal/service"
	"github.com/signerd/signerd/internal/testutil/certs"
)

// TestTLSStreamEndsWithItsCA: a SignBatch stream of a client whose CA a
// reload removes gets no signature for its next item (UNAUTHENTICATED),
// though the stream was opened, and its first item signed, before; a new
// call on the connection is refused too, and logged under the client's
// host. Before, a stream kept signing for as long as it was held open.
func TestTLSStreamEndsWithItsCA(t *testing.T) {
	ctx, svc := hsmService(t)
	var logged lockedLog
	log := slog.New(slog.NewTextHandler(&logged, nil))
	if _, err := svc.CreateKey(ctx, service.CreateKeyInput{Name: "k", Algorithm: keystore.Ed25519}); err != nil {
		t.Fatal(err)
	}
	policy, err := ParsePolicy([]byte(`{"version":1,"rules":[{"certs":["build-farm.example.com"],"role":"signer","keys":["k"]}]}`))
	if err != nil {
		t.Fatal(err)
	}
	ca, next := certs.NewCA(t, "compromised"), certs.NewCA(t, "next")
	serving := newTLSServing(t, ca, ca)
	l := serving.listen(t)
	srv := New(svc, Options{Logger: log, Authorizer: policy})
	go srv.Serve(l)
	t.Cleanup(func() { srv.Stop(context.Background()) })

	client := ca.Issue(t, certs.Leaf{DNS: []string{"build-farm.example.com"}})
	conn, err := grpc.NewClient(l.Addr().String(), grpc.WithTransportCredentials(credentials.NewTLS(clientTLS(t, client, ca))))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	signer := signerv1.NewSignerServiceClient(conn)
	stream, err := signer.SignBatch(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	d := sha256.Sum256([]byte("built"))
	item := &signerv1.SignBatchRequest{Request: &signerv1.SignRequest{KeyName: "k", Digest: d[:], ArtifactName: "a"}}
	signItem := func() *signerv1.SignBatchResponse {
		if err := stream.Send(item); err != nil {
			t.Fatal(err)
		}
		r, err := stream.Recv()
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	if r := signItem(); r.GetResponse() == nil {
		t.Fatalf("an item under the CA in force: %v", r.GetError())
	}

	serving.reload(t, next) // the CA removed, as after its compromise
	if r := signItem(); r.GetResponse() != nil || codes.Code(r.GetError().GetCode()) != codes.Unauthenticated {
		t.Fatalf("an item on the stream after its CA was removed: signed %v, error %v; want UNAUTHENTICATED", r.GetResponse() != nil, r.GetError())
	}
	if _, err := signer.GetServerInfo(context.Background(), &signerv1.GetServerInfoRequest{}); status.Code(err) != codes.Unauthenticated {
		t.Fatalf("a new call on the connection: %v, want UNAUTHENTICATED", err)
	}
	if l := logged.String(); !strings.Contains(l, `msg="call refused"`) || !strings.Contains(l, "caller=peer:127.0.0.1") {
		t.Fatalf("the refused call is not logged under the client's host:\n%s", l)
	}
	// The refused connection is closed soon after, so that the client
	// connects again (with a renewed certificate, it would get in).
	wait, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for st := conn.GetState(); st == connectivity.Ready; st = conn.GetState() {
		if !conn.WaitForStateChange(wait, st) {
			t.Fatal("the refused connection stayed open")
		}
	}
}

// lockedLog is a log destination safe for the server's goroutines.
type lockedLog struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *lockedLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
