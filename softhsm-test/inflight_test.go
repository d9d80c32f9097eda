package softhsmtest

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/signerd/signerd/client"
	signerv1 "github.com/signerd/signerd/gen/signer/v1"
)

// peakRSSKiB is the daemon's peak resident memory so far (VmHWM).
func (d *daemon) peakRSSKiB(t *testing.T) int {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(d.cmd.Process.Pid), "status"))
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		if k, v, ok := strings.Cut(l, ":"); ok && k == "VmHWM" {
			n, _ := strconv.Atoi(strings.Fields(v)[0])
			return n
		}
	}
	t.Fatal("no VmHWM in /proc status")
	return 0
}

// TestConcurrentMaximalRequests: 1,024 concurrent requests of the largest
// size the daemon accepts (1 MiB: a SignSkill whose manifest fills it) or
// of that size for a method that takes less (a Verify whose document is
// that large), from one uid over 16 connections,
// keep the daemon's peak resident memory under 512 MiB: each call
// reserves the largest request size from its peer's budget of request
// bytes in flight (256 MiB) before its body is read, and calls beyond the
// budget are refused RESOURCE_EXHAUSTED at once. Methods that need
// kilobytes refuse larger requests (Verify: 64 KiB). Afterwards the
// budget is whole again and the daemon serves as before.
func TestConcurrentMaximalRequests(t *testing.T) {
	d := startDaemon(t)
	mustSignctl(t, d, "key", "create", "skills", "--algorithm", "ecdsa-p256")
	var conns []*client.Client
	for range 16 {
		conns = append(conns, relDial(t, d))
	}
	// Just under the server-wide limit once encoded.
	payload := []byte(strings.Repeat("x", 1<<20-1<<10))
	manifest := map[string]string{}
	for i := 0; len(manifest)*80 < 1<<20-8<<10; i++ {
		manifest[strconv.Itoa(i)+strings.Repeat("p", 8)] = "sha256:" + strings.Repeat("a", 64)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	var refusedSize, refusedBudget, other atomic.Int64
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range 1024 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := conns[i%len(conns)]
			<-start
			var err error
			if i%2 == 0 {
				_, err = c.Signer.Verify(ctx, &signerv1.VerifyRequest{Org: "acme", Digest: relDigest(), SignatureDocument: payload})
			} else {
				_, err = c.Skills.SignSkill(ctx, &signerv1.SignSkillRequest{KeyName: "no-such-key", Root: relDigest(), Domain: "example.com", FileManifest: manifest})
			}
			switch {
			case status.Code(err) == codes.ResourceExhausted && strings.Contains(status.Convert(err).Message(), "in flight"):
				refusedBudget.Add(1)
			case status.Code(err) == codes.ResourceExhausted && strings.Contains(status.Convert(err).Message(), "accepts at most"):
				refusedSize.Add(1)
			default:
				other.Add(1)
			}
		}()
	}
	close(start)
	wg.Wait()
	peak := d.peakRSSKiB(t)
	t.Logf("1,024 concurrent 1 MiB requests: %d refused by the per-peer budget, %d by the method's size limit, %d answered otherwise; peak RSS %d MiB",
		refusedBudget.Load(), refusedSize.Load(), other.Load(), peak>>10)
	if peak > 512<<10 {
		t.Fatalf("peak resident memory %d MiB, want under 512 MiB", peak>>10)
	}
	if refusedSize.Load() == 0 {
		t.Error("no Verify was refused for its size")
	}
	// The daemon still serves: the budget was given back.
	mustSignctl(t, d, "key", "list")
	if _, err := conns[0].Signer.Verify(ctx, &signerv1.VerifyRequest{Org: "acme", Digest: relDigest(), SignatureDocument: payload}); !strings.Contains(status.Convert(err).Message(), "accepts at most") {
		t.Fatalf("a lone oversized Verify: %v", err)
	}
}
