//go:build cgo

package server

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	signerv1 "github.com/signerd/signerd/gen/signer/v1"
	"github.com/signerd/signerd/internal/keystore"
	"github.com/signerd/signerd/internal/keystore/pkcs11"
	"github.com/signerd/signerd/internal/service"
	"github.com/signerd/signerd/internal/skill"
	"github.com/signerd/signerd/internal/store/boltstore"
	"github.com/signerd/signerd/internal/testutil/softhsm"
)

// hsmService is a service on a new SoftHSM2 token and bbolt file, and a
// context calling as an admin would.
func hsmService(t *testing.T) (context.Context, *service.Service) {
	t.Helper()
	ctx := service.WithCaller(context.Background(), service.Caller{ID: "uid:test"})
	tok := softhsm.NewToken(t)
	ks, err := pkcs11.Open(ctx, tok.Config())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ks.Close() })
	st, err := boltstore.Open(ctx, filepath.Join(t.TempDir(), "db"), boltstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return ctx, service.New(st, ks, service.Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
}

// headerSeen is an Authorizer that tells when it has decided a SignSkill
// (a SignSkillStream's header).
type headerSeen struct {
	Authorizer
	seen chan struct{}
}

func (h headerSeen) Authorize(ctx context.Context, id Identity, method string, req any) error {
	err := h.Authorizer.Authorize(ctx, id, method, req)
	if method == signerv1.SkillService_SignSkill_FullMethodName {
		select {
		case h.seen <- struct{}{}:
		default:
		}
	}
	return err
}

// TestSkillStreamAuthorizedWhenSigned: a SignSkillStream whose header was
// authorized, still open when a policy reload removes its caller, is
// refused when its manifest is complete, as a SignBatch item and a new
// call are. Before, the header's check stood for the whole stream, and a
// caller removed from the policy could keep streams open and get
// signatures afterwards.
func TestSkillStreamAuthorizedWhenSigned(t *testing.T) {
	ctx, svc := hsmService(t)
	dir := t.TempDir()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	if _, err := svc.CreateKey(ctx, service.CreateKeyInput{Name: "skills", Algorithm: keystore.ECDSAP256, Org: "example.com"}); err != nil {
		t.Fatal(err)
	}
	allow, err := ParsePolicy(fmt.Appendf(nil, `{"version":1,"rules":[{"uids":[%d],"role":"signer","keys":["skills"],"domains":["example.com"]}]}`, os.Geteuid()))
	if err != nil {
		t.Fatal(err)
	}
	deny, err := ParsePolicy([]byte(`{"version":1,"rules":[{"everyone_local":true,"role":"verifier"}]}`))
	if err != nil {
		t.Fatal(err)
	}
	policy := NewSwitchAuthorizer(allow)
	seen := make(chan struct{}, 1)
	srv := New(svc, Options{Logger: log, Authorizer: headerSeen{Authorizer: policy, seen: seen}})
	sock := filepath.Join(dir, "s.sock")
	l, err := ListenUnix(sock, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Stop(context.Background()) })
	conn, err := grpc.NewClient("unix://"+sock, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	client := signerv1.NewSkillServiceClient(conn)

	files := map[string]string{"SKILL.md": "sha256:" + strings.Repeat("ab", 32)}
	root, err := skill.ComputeRoot(files)
	if err != nil {
		t.Fatal(err)
	}
	header := &signerv1.SignSkillRequest{KeyName: "skills", Root: root[:], Domain: "example.com", SkillName: "s"}
	sign := func(reload bool) error {
		for len(seen) > 0 { // a previous stream's final check
			<-seen
		}
		stream, err := client.SignSkillStream(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if err := stream.Send(&signerv1.SignSkillStreamRequest{Header: header}); err != nil {
			t.Fatal(err)
		}
		<-seen // the header is authorized
		if reload {
			policy.Set(deny) // SIGHUP: the signer's rule is gone
		}
		for p, h := range files {
			if err := stream.Send(&signerv1.SignSkillStreamRequest{Entries: []*signerv1.ManifestEntry{{Path: p, Hash: h}}}); err != nil {
				t.Fatal(err)
			}
		}
		_, err = stream.CloseAndRecv()
		return err
	}
	if err := sign(false); err != nil {
		t.Fatalf("SignSkillStream under the policy that allows it: %v", err)
	}
	if err := sign(true); status.Code(err) != codes.PermissionDenied {
		t.Fatalf("SignSkillStream whose caller a reload removed before its manifest was in: %v, want PERMISSION_DENIED", err)
	}
}
