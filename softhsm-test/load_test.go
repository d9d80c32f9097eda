package softhsmtest

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc/health/grpc_health_v1"

	"github.com/signerd/signerd/client"
	signerv1 "github.com/signerd/signerd/gen/signer/v1"
)

// TestLoad: 64 clients, each on its own connection, mix Sign and Verify
// (from the records) as fast as they can. Not one call may fail; the
// daemon's memory and threads stay bounded while it runs, and its open
// descriptors come back to where they were once the clients have gone.
// The bounds are generous: this is a leak and runaway check, not a
// benchmark (make bench measures).
//
// Short form: 40 calls per client, counted, however long a loaded machine
// takes. SIGNERD_SOAK=1: as many as 60 s allow.
func TestLoad(t *testing.T) {
	const clients, perClient = 64, 40
	var dur time.Duration
	if relSoak() {
		dur = time.Minute
	}
	d := startDaemon(t, "--log-level", "info")
	key, org, fp := relPrepare(t, d)
	base := d.proc(t)

	var (
		signs, verifies, failures atomic.Int64
		peak                      relProc
		peakMu                    sync.Mutex
	)
	stopSampling := make(chan struct{})
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-stopSampling:
				return
			case <-tick.C:
			}
			p := d.proc(t)
			peakMu.Lock()
			peak.rssKiB, peak.rssAnonKiB = max(peak.rssKiB, p.rssKiB), max(peak.rssAnonKiB, p.rssAnonKiB)
			peak.threads, peak.fds = max(peak.threads, p.threads), max(peak.fds, p.fds)
			peakMu.Unlock()
		}
	}()

	start := time.Now()
	deadline := start.Add(dur)
	more := func(n int) bool {
		if dur == 0 {
			return n < perClient
		}
		return time.Now().Before(deadline)
	}
	var wg sync.WaitGroup
	for i := range clients {
		c, err := client.DialUnix(d.socket)
		if err != nil {
			t.Fatal(err)
		}
		wg.Go(func() {
			defer c.Close()
			var last []byte
			var err error
			for n := 0; more(n); n++ {
				ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
				if last == nil || (n+i)%2 == 0 {
					dg := relDigest()
					_, err = c.Signer.Sign(ctx, &signerv1.SignRequest{KeyName: key, Digest: dg, ArtifactName: "load.so"})
					if err == nil {
						last = dg
						signs.Add(1)
					}
				} else {
					var resp *signerv1.VerifyResponse
					resp, err = c.Signer.Verify(ctx, &signerv1.VerifyRequest{Org: org, Digest: last})
					if err == nil && (!resp.GetVerified() || resp.GetSignerFingerprint() != fp) {
						t.Errorf("Verify under load: %v", resp)
					}
					verifies.Add(1)
				}
				cancel()
				if err != nil {
					if failures.Add(1) <= 5 {
						t.Errorf("client %d under load: %v", i, err)
					}
				}
			}
		})
	}
	wg.Wait()
	close(stopSampling)
	<-sampled

	if n := failures.Load(); n > 0 {
		t.Fatalf("%d calls failed under load", n)
	}
	if n := signs.Load() + verifies.Load(); dur == 0 && n != clients*perClient {
		t.Fatalf("%d calls completed, want %d", n, clients*perClient)
	}
	t.Logf("%d clients for %s: %d Sign, %d Verify, 0 errors", clients, time.Since(start).Round(time.Millisecond), signs.Load(), verifies.Load())
	t.Logf("daemon before: %v; peak under load: %v", base, peak)

	// The clients are gone: their connections must be too.
	var after relProc
	relWaitFor(t, "descriptors back to the level before the load", 15*time.Second, func() bool {
		after = d.proc(t)
		return after.fds <= base.fds+4
	})
	t.Logf("daemon after the clients left: %v", after)
	// Heap and stacks must stay flat whatever the duration; the mapped
	// database grows with the records (about 2 KiB per signature).
	const maxAnonMiB, maxRSSMiB, maxThreads = 256, 512, 200
	if peak.rssAnonKiB/1024 > maxAnonMiB {
		t.Errorf("anonymous memory peaked at %d MiB under load, bound %d MiB", peak.rssAnonKiB/1024, maxAnonMiB)
	}
	if peak.rssKiB/1024 > maxRSSMiB {
		t.Errorf("resident memory peaked at %d MiB under load, bound %d MiB", peak.rssKiB/1024, maxRSSMiB)
	}
	if peak.threads > maxThreads {
		t.Errorf("threads peaked at %d under load, bound %d", peak.threads, maxThreads)
	}
	if peak.fds > base.fds+clients+64 {
		t.Errorf("descriptors peaked at %d with %d clients (before: %d)", peak.fds, clients, base.fds)
	}
	if st := relHealth(t, relDial(t, d)); st != grpc_health_v1.HealthCheckResponse_SERVING {
		t.Errorf("health %v after the load, want SERVING", st)
	}
}
