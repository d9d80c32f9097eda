package softhsmtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"sync"
	"testing"

	signerv1 "github.com/signerd/signerd/gen/signer/v1"
)

// TestMadeUpOrgsMemory: Verify calls for distinct made-up orgs — each
// refused UNKNOWN_ORG — leave the daemon's resident memory within a bound
// proportional to the (1 M calls, at most 64 MiB above where it
// started): nothing is cached for an org nobody configured, every cache is
// bounded, and the refusals' audit records are aggregated. 100,000 calls
// here (bound 6.4 MiB); 1,000,000 under make soak (64 MiB). Before the fix each call added a
// cache entry that nothing evicted: about 1 KiB per call.
func TestMadeUpOrgsMemory(t *testing.T) {
	d := startDaemon(t)
	c := relDial(t, d)
	calls := 100_000
	if relSoak() {
		calls = 1_000_000
	}
	const workers = 16
	flood := func(n int) {
		var wg sync.WaitGroup
		for range workers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				digest, org := relDigest(), make([]byte, 16)
				for range n / workers {
					rand.Read(org)
					_, err := c.Signer.Verify(context.Background(), &signerv1.VerifyRequest{Org: hex.EncodeToString(org), Digest: digest})
					if relReason(err) != "UNKNOWN_ORG" {
						t.Errorf("Verify for a made-up org: %v (reason %q)", err, relReason(err))
						return
					}
				}
			}()
		}
		wg.Wait()
	}
	// Warm up the connection's buffers and the runtime before the first
	// reading, so that the bound measures growth with the calls.
	flood(5_000)
	if t.Failed() {
		return
	}
	before := d.proc(t)
	flood(calls)
	after := d.proc(t)
	growthKiB := after.rssKiB - before.rssKiB
	boundKiB := 64 << 10 * calls / 1_000_000
	t.Logf("%d Verify calls for made-up orgs: rss %d → %d MiB (+%d KiB, bound %d KiB); %s", calls, before.rssKiB>>10, after.rssKiB>>10, growthKiB, boundKiB, after)
	if growthKiB > boundKiB {
		t.Fatalf("resident memory grew %d KiB over %d calls for made-up orgs, bound %d KiB", growthKiB, calls, boundKiB)
	}
}
