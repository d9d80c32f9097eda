package softhsmtest

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/signerd/signerd/client"
	signerv1 "github.com/signerd/signerd/gen/signer/v1"
	"github.com/signerd/signerd/internal/testutil/etcdtest"
	"github.com/signerd/signerd/internal/testutil/softhsm"
)

// Helpers of replicas_test.go: several real signerd processes sharing one
// SoftHSM2 token (the stand-in for a network HSM) and one real etcd
// cluster, started in this test process.

// replicaSet is an etcd cluster and a token that replicas share.
type replicaSet struct {
	etcd    *etcdtest.Cluster
	tok     *softhsm.Token
	pinFile string
	prefix  string
}

// newReplicaSet starts an etcd cluster of members members and, unless tok
// is given, a new token.
func newReplicaSet(t *testing.T, members int, tok *softhsm.Token) *replicaSet {
	t.Helper()
	if tok == nil {
		tok = softhsm.NewToken(t)
	}
	return &replicaSet{
		etcd:    etcdtest.Start(t, members, etcdtest.Options{}),
		tok:     tok,
		pinFile: tok.WritePINFile(t),
		prefix:  "/signerd/",
	}
}

// store is the --store value of the set's replicas.
func (rs *replicaSet) store() string { return "etcd:" + strings.Join(rs.etcd.Endpoints(), ",") }

// launch starts a replica process without waiting for it to serve.
func (rs *replicaSet) launch(t *testing.T, extra ...string) *daemon {
	t.Helper()
	dir := t.TempDir()
	d := &daemon{t: t, tok: rs.tok, dir: dir, socket: filepath.Join(dir, "run", "signerd.sock"), pinFile: rs.pinFile}
	args := append([]string{
		"--pkcs11-module", rs.tok.ModulePath, "--token-label", rs.tok.Label, "--pin-file", rs.pinFile,
		"--store", rs.store(), "--etcd-prefix", rs.prefix, "--socket", d.socket, "--log-level", "info",
	}, extra...)
	d.logs = &syncBuffer{}
	d.cmd = exec.Command(bins.signerd, args...)
	// Every replica sees the same token directory: one SoftHSM2 token
	// shared by several processes, as a network HSM is.
	d.cmd.Env = append(os.Environ(), "SOFTHSM2_CONF="+rs.tok.ConfPath)
	d.cmd.Stdout, d.cmd.Stderr = d.logs, d.logs
	if err := d.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	d.exited = make(chan error, 1)
	go func() { d.exited <- d.cmd.Wait() }()
	t.Cleanup(func() { d.stop(t) })
	return d
}

// waitServing waits until d answers health checks with SERVING and its
// log holds the start-up summary, the last line it writes before serving:
// stderr reaches d.logs through a pipe copier that can lag the socket.
func (d *daemon) waitServing(t *testing.T) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case err := <-d.exited:
			d.exited <- err
			t.Fatalf("signerd exited during start-up: %v\n%s", err, d.logs.String())
		default:
		}
		if d.healthy() {
			d.waitForLog(t, `msg="signerd serving" `)
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("signerd did not become healthy\n%s", d.logs.String())
}

// start starts a replica and waits until it serves.
func (rs *replicaSet) start(t *testing.T, extra ...string) *daemon {
	t.Helper()
	d := rs.launch(t, extra...)
	d.waitServing(t)
	return d
}

// repSign signs a fresh digest through c and returns the digest and the
// response.
func repSign(ctx context.Context, c *client.Client, key string) ([]byte, *signerv1.SignResponse, error) {
	dg := relDigest()
	cctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	resp, err := c.Signer.Sign(cctx, &signerv1.SignRequest{KeyName: key, Digest: dg, ArtifactName: "replica.so"})
	return dg, resp, err
}

// repVerify verifies a digest from the records through c.
func repVerify(c *client.Client, org string, dg []byte) (*signerv1.VerifyResponse, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	return c.Signer.Verify(ctx, &signerv1.VerifyRequest{Org: org, Digest: dg})
}

// repRefusedEventually polls call until it fails with reason and returns
// how long after since (the acknowledgement of the change that must cause
// it) that happened, for the test to log. It fails the test only when the
// refusal never comes: bound is a generous "never" (no loaded machine
// takes it), not a latency requirement — `make test` asserts no timings.
func repRefusedEventually(t *testing.T, what string, since time.Time, bound time.Duration, reason string, call func() error) time.Duration {
	t.Helper()
	var last error
	for {
		err := call()
		if err != nil && relReason(err) == reason {
			return time.Since(since)
		}
		if err != nil && status.Code(err) != codes.FailedPrecondition && status.Code(err) != codes.PermissionDenied {
			last = err
		}
		if time.Since(since) > bound {
			t.Fatalf("%s: never refused with %s (gave up after %s; last error: %v)", what, reason, bound, last)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// repAuditIntact runs `signctl audit verify -o json` against d and returns
// the head and the newest checkpoint's seq.
func repAuditIntact(t *testing.T, d *daemon) (head, checkpoint uint64) {
	t.Helper()
	v := mustSignctl(t, d, "audit", "verify", "-o", "json").json(t)
	if v["intact"] != true {
		t.Fatalf("audit verify through %s: %v", d.socket, v)
	}
	if h, ok := v["head_seq"].(float64); ok {
		head = uint64(h)
	}
	if cp, ok := v["latest_checkpoint"].(map[string]any); ok {
		checkpoint = uint64(cp["seq"].(float64))
	}
	return head, checkpoint
}

func (rs *replicaSet) String() string {
	return fmt.Sprintf("%d etcd members, token %s", len(rs.etcd.Endpoints()), rs.tok.Label)
}
