package softhsmtest

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	mrand "math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
	"google.golang.org/grpc/status"

	"github.com/signerd/signerd/client"
	signerv1 "github.com/signerd/signerd/gen/signer/v1"
	"github.com/signerd/signerd/internal/errdefs"
	"github.com/signerd/signerd/internal/store/boltstore"
)

// TestCrashSafety: clients sign continuously and keep every signature they
// receive; signerd is killed with SIGKILL at a random moment, again and
// again. After each kill the database opens (read-only, without any
// repair) and passes bbolt's page check, the audit chain verifies, and
// every signature any client ever received is in the records, byte for
// byte; after each restart the daemon verifies each one from its records.
//
// Short form: 20 kills, 100–300 ms of load each. SIGNERD_SOAK=1: 100 kills,
// 0.2–2 s each, more clients.
func TestCrashSafety(t *testing.T) {
	kills, clients, minLoad, maxLoad := 20, 8, 100*time.Millisecond, 300*time.Millisecond
	if relSoak() {
		kills, clients, minLoad, maxLoad = 100, 32, 200*time.Millisecond, 2*time.Second
	}
	d := startDaemon(t, "--log-level", "info")
	key, org, fp := relPrepare(t, d)

	received := map[string][]byte{} // hex digest → signature, over every cycle
	total := 0
	for cycle := range kills {
		load := minLoad + time.Duration(mrand.Int64N(int64(maxLoad-minLoad)+1))
		got := relSignUntilKilled(t, d, key, clients, load)
		for dg, sig := range got {
			received[dg] = sig
		}
		total += len(got)

		relCheckDatabase(t, d.db, received)

		d.start(t, "--log-level", "info")
		relVerifyFromRecords(t, d, org, fp, got)
		if cycle%5 == 4 || cycle == kills-1 {
			t.Logf("after %d kills: %d signatures received, all recorded and verified", cycle+1, total)
		}
	}
	if total == 0 {
		t.Fatal("no client received a signature")
	}
}

// relSignUntilKilled runs clients signing as fast as they can for load, then
// kills the daemon with SIGKILL mid-flight and returns every signature the
// clients received. A failure before the kill fails the test.
func relSignUntilKilled(t *testing.T, d *daemon, key string, clients int, load time.Duration) map[string][]byte {
	t.Helper()
	var (
		killed atomic.Bool
		mu     sync.Mutex
		got    = map[string][]byte{}
		wg     sync.WaitGroup
	)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	for range clients {
		c, err := client.DialUnix(d.socket)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		wg.Go(func() {
			for ctx.Err() == nil {
				dg := relDigest()
				cctx, ccancel := context.WithTimeout(ctx, 20*time.Second)
				resp, err := c.Signer.Sign(cctx, &signerv1.SignRequest{KeyName: key, Digest: dg, ArtifactName: "crash.so"})
				ccancel()
				if err != nil {
					if killed.Load() || ctx.Err() != nil {
						return
					}
					t.Errorf("Sign before the kill: %v", err)
					return
				}
				mu.Lock()
				got[hex.EncodeToString(dg)] = resp.GetSignature()
				mu.Unlock()
			}
		})
	}
	time.Sleep(load)
	killed.Store(true)
	d.kill9(t)
	// Calls in flight fail now (the socket is gone); stop the clients.
	cancel()
	wg.Wait()
	mu.Lock()
	defer mu.Unlock()
	return got
}

// relCheckDatabase checks the database of a dead daemon: the bbolt file
// as the kill left it passes bbolt's page check; a read-only open either
// succeeds or refuses because the journal holds records not yet applied
// (and says so); then the store opens as signerd's next start opens it,
// applying the journal, and the audit chain verifies and a record holds
// exactly the signature each client received.
func relCheckDatabase(t *testing.T, path string, received map[string][]byte) {
	t.Helper()
	ctx := context.Background()
	raw, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true})
	if err != nil {
		t.Fatalf("the database does not open after kill -9: %v", err)
	}
	err = raw.View(func(tx *bolt.Tx) error {
		for err := range tx.Check() {
			return err
		}
		return nil
	})
	raw.Close()
	if err != nil {
		t.Fatalf("page check after kill -9: %v", err)
	}
	if ro, err := boltstore.Open(ctx, path, boltstore.Options{ReadOnly: true}); err == nil {
		ro.Close()
	} else if !errors.Is(err, errdefs.ErrFailedPrecondition) || !strings.Contains(err.Error(), "start signerd on it once") {
		t.Fatalf("read-only open after kill -9: %v", err)
	}
	st, err := boltstore.Open(ctx, path, boltstore.Options{})
	if err != nil {
		t.Fatalf("the database does not open after kill -9: %v", err)
	}
	defer st.Close()
	if err := st.CheckPages(ctx); err != nil {
		t.Fatalf("page check after the journal is applied: %v", err)
	}
	if err := st.VerifyAudit(ctx); err != nil {
		t.Fatalf("audit chain after kill -9: %v", err)
	}
	for dg, sig := range received {
		raw, _ := hex.DecodeString(dg)
		recs, err := st.SignaturesByDigest(ctx, raw)
		if err != nil {
			t.Fatalf("records of %s: %v", dg, err)
		}
		found := false
		for _, r := range recs {
			found = found || bytes.Equal(r.Signature, sig)
		}
		if !found {
			t.Fatalf("a client received a signature over %s that is not in the records (%d records for it)", dg, len(recs))
		}
	}
}

// relVerifyFromRecords asks the restarted daemon to verify each digest from
// its records (no detached document) for an org that trusts the key.
func relVerifyFromRecords(t *testing.T, d *daemon, org, fp string, got map[string][]byte) {
	t.Helper()
	c, err := client.DialUnix(d.socket)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	digests := make(chan string, len(got))
	for dg := range got {
		digests <- dg
	}
	close(digests)
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for range 8 {
		wg.Go(func() {
			for dg := range digests {
				raw, _ := hex.DecodeString(dg)
				ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
				resp, err := c.Signer.Verify(ctx, &signerv1.VerifyRequest{Org: org, Digest: raw})
				cancel()
				switch {
				case err != nil:
					errs <- fmt.Errorf("Verify %s after restart: %v (%s)", dg, err, status.Code(err))
					return
				case !resp.GetVerified() || resp.GetSignerFingerprint() != fp:
					errs <- fmt.Errorf("Verify %s after restart: %v", dg, resp)
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if t.Failed() {
		t.FailNow()
	}
}
