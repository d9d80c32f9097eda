package softhsmtest

import (
	"context"
	"crypto/sha256"
	"errors"
	"io"
	"os"
	"testing"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	signerv1 "github.com/signerd/signerd/gen/signer/v1"
)

// loader is what a package loader does before dlopen: open the file once,
// hash that open descriptor, ask signerd, and load the very descriptor it
// hashed (no time-of-check/time-of-use gap: a file swapped on disk after the
// open is not what gets loaded). It speaks only the generated API, as a
// loader in another language would.
type loader struct {
	client signerv1.SignerServiceClient
	org    string
}

// errRefused is a refusal with its reason.
type errRefused struct {
	code   codes.Code
	reason string
}

func (e errRefused) Error() string { return e.reason }

// load returns the bytes it would load, or the refusal.
func (l loader) load(ctx context.Context, path string, sigDoc []byte) ([]byte, signerv1.VerifyOutcome, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, 0, err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return nil, 0, err
	}
	resp, err := l.client.Verify(ctx, &signerv1.VerifyRequest{Org: l.org, Digest: h.Sum(nil), SignatureDocument: sigDoc})
	if err != nil {
		st := status.Convert(err)
		for _, d := range st.Details() {
			if info, ok := d.(*errdetails.ErrorInfo); ok {
				return nil, 0, errRefused{code: st.Code(), reason: info.GetReason()}
			}
		}
		return nil, 0, err
	}
	// "Load" the same descriptor: rewind it and read what was verified.
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return nil, 0, err
	}
	b, err := io.ReadAll(f)
	return b, resp.GetOutcome(), err
}

func TestLoaderVerifiesOverSocket(t *testing.T) {
	d := startDaemon(t)
	dir := t.TempDir()
	mustSignctl(t, d, "key", "create", "release")
	mustSignctl(t, d, "key", "create", "stranger")
	mustSignctl(t, d, "trust", "add", "--org", "acme", "--key", "release")
	good := writeFile(t, dir, "good.so", []byte("good library"))
	mustSignctl(t, d, "sign", good, "--key", "release")
	strange := writeFile(t, dir, "strange.so", []byte("stranger's library"))
	mustSignctl(t, d, "sign", strange, "--key", "stranger")
	unsigned := writeFile(t, dir, "unsigned.so", []byte("unsigned library"))
	goodSig, _ := os.ReadFile(good + ".sig")
	tampered := writeFile(t, dir, "tampered.so", []byte("good library, patched"))

	conn, err := grpc.NewClient("unix:"+d.socket, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	l := loader{client: signerv1.NewSignerServiceClient(conn), org: "acme"}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	type want struct {
		outcome signerv1.VerifyOutcome
		code    codes.Code
		reason  string
	}
	cases := []struct {
		name    string
		path    string
		sig     []byte
		require bool
		want    want
	}{
		{"verified from records", good, nil, false, want{outcome: signerv1.VerifyOutcome_VERIFY_OUTCOME_VERIFIED}},
		{"verified with detached signature", good, goodSig, false, want{outcome: signerv1.VerifyOutcome_VERIFY_OUTCOME_VERIFIED}},
		{"tampered", tampered, goodSig, false, want{code: codes.FailedPrecondition, reason: "PACKAGE_TAMPERED"}},
		{"untrusted signer", strange, nil, false, want{code: codes.FailedPrecondition, reason: "UNTRUSTED_SIGNER"}},
		{"unsigned, policy admits", unsigned, nil, false, want{outcome: signerv1.VerifyOutcome_VERIFY_OUTCOME_UNSIGNED_ADMITTED}},
		{"unsigned, policy requires signatures", unsigned, nil, true, want{code: codes.NotFound, reason: "SIGNATURE_NOT_FOUND"}},
		{"tampered, policy requires signatures", tampered, goodSig, true, want{code: codes.FailedPrecondition, reason: "PACKAGE_TAMPERED"}},
		{"verified, policy requires signatures", good, nil, true, want{outcome: signerv1.VerifyOutcome_VERIFY_OUTCOME_VERIFIED}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			mustSignctl(t, d, "policy", "set", "--org", "acme", "--require-signatures="+map[bool]string{true: "true", false: "false"}[tc.require])
			b, outcome, err := l.load(ctx, tc.path, tc.sig)
			if tc.want.reason != "" {
				var r errRefused
				if !errors.As(err, &r) || r.reason != tc.want.reason || r.code != tc.want.code {
					t.Fatalf("load = %v, want %s %s", err, tc.want.code, tc.want.reason)
				}
				if b != nil {
					t.Fatal("a refused package was loaded")
				}
				return
			}
			if err != nil || outcome != tc.want.outcome {
				t.Fatalf("load = %v, %v; want %v", outcome, err, tc.want.outcome)
			}
			want, _ := os.ReadFile(tc.path)
			if string(b) != string(want) {
				t.Fatal("loaded bytes differ from the verified file")
			}
		})
	}
}
