package softhsmtest

import (
	"context"
	"crypto/rand"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"

	"github.com/signerd/signerd/client"
	signerv1 "github.com/signerd/signerd/gen/signer/v1"
)

// Helpers of the reliability tests (hsmfault_test.go, crash_test.go,
// load_test.go, badclients_test.go).

// relSoak reports whether the long form was asked for: SIGNERD_SOAK=1
// (`make soak`).
func relSoak() bool { return os.Getenv("SIGNERD_SOAK") == "1" }

// relProc is what /proc says about the daemon.
// rssAnonKiB is the heap and stacks; the rest of rssKiB is mostly the
// database file mapped by bbolt, which grows with the records.
type relProc struct {
	rssKiB, rssAnonKiB, threads, fds int
}

func (p relProc) String() string {
	return "rss " + strconv.Itoa(p.rssKiB/1024) + " MiB (anonymous " + strconv.Itoa(p.rssAnonKiB/1024) + " MiB), " +
		strconv.Itoa(p.threads) + " threads, " + strconv.Itoa(p.fds) + " fds"
}

// proc reads the daemon's resident memory, threads and open descriptors.
func (d *daemon) proc(t *testing.T) relProc {
	t.Helper()
	pid := d.cmd.Process.Pid
	status, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "status"))
	if err != nil {
		t.Fatalf("read /proc status of signerd: %v", err)
	}
	var p relProc
	for _, line := range strings.Split(string(status), "\n") {
		k, v, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		f := strings.Fields(v)
		if len(f) == 0 {
			continue
		}
		switch k {
		case "VmRSS":
			p.rssKiB, _ = strconv.Atoi(f[0])
		case "RssAnon":
			p.rssAnonKiB, _ = strconv.Atoi(f[0])
		case "Threads":
			p.threads, _ = strconv.Atoi(f[0])
		}
	}
	fds, err := os.ReadDir(filepath.Join("/proc", strconv.Itoa(pid), "fd"))
	if err != nil {
		t.Fatalf("read /proc fds of signerd: %v", err)
	}
	p.fds = len(fds)
	return p
}

// kill9 kills the daemon with SIGKILL and waits for it to be gone.
func (d *daemon) kill9(t *testing.T) {
	t.Helper()
	if err := d.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatalf("kill -9 signerd: %v", err)
	}
	select {
	case err := <-d.exited:
		d.exited <- err
	case <-time.After(30 * time.Second):
		t.Fatal("signerd did not die on SIGKILL")
	}
}

// relDial connects a gRPC client to the daemon; it is closed when the test
// ends.
func relDial(t *testing.T, d *daemon) *client.Client {
	t.Helper()
	c, err := client.DialUnix(d.socket)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// relPrepare creates the Ed25519 key "release" and the org "acme" that
// trusts it, and returns the key's fingerprint.
func relPrepare(t *testing.T, d *daemon) (key, org, fingerprint string) {
	t.Helper()
	mustSignctl(t, d, "key", "create", "release", "--algorithm", "ed25519")
	mustSignctl(t, d, "trust", "add", "--org", "acme", "--key", "release")
	c := relDial(t, d)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := c.Signer.Sign(ctx, &signerv1.SignRequest{KeyName: "release", Digest: relDigest(), ArtifactName: "warm-up"})
	if err != nil {
		t.Fatalf("warm-up Sign: %v", err)
	}
	return "release", "acme", resp.GetKeyFingerprint()
}

// relDigest is a random SHA-256-sized digest: every signature in these
// tests is over a digest of its own.
func relDigest() []byte {
	b := make([]byte, 32)
	rand.Read(b)
	return b
}

// relReason is the google.rpc.ErrorInfo reason of a gRPC error.
func relReason(err error) string {
	for _, d := range status.Convert(err).Details() {
		if info, ok := d.(*errdetails.ErrorInfo); ok {
			return info.GetReason()
		}
	}
	return ""
}

// relHealth is the daemon's overall health status ("" service).
func relHealth(t *testing.T, c *client.Client) grpc_health_v1.HealthCheckResponse_ServingStatus {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := c.Health.Check(ctx, &grpc_health_v1.HealthCheckRequest{})
	if err != nil {
		t.Fatalf("health check: %v", err)
	}
	return resp.GetStatus()
}

// relWaitFor polls cond until it holds or limit passes. The limits are
// generous bounds on "eventually", never performance claims.
func relWaitFor(t *testing.T, what string, limit time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("gave up after %s waiting for %s", limit, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
