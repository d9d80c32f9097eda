package softhsmtest

import (
	"context"
	"encoding/hex"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/signerd/signerd/client"
	signerv1 "github.com/signerd/signerd/gen/signer/v1"
)

// Several signerd replicas (issue #6): two real signerd processes share one
// SoftHSM2 token directory (the stand-in for a network HSM) and a real
// 3-member etcd cluster (go.etcd.io/etcd/server/v3/embed, in this test
// process, on loopback).

// TestReplicasShareState: what one replica does, the other sees. B starts
// on the store A initialised (B uses A's audit key); a key created through
// A is trusted through B, signed with through A and verified through B; a
// key created through B signs through A (A finds it in the token by CKA_ID
// and checks it against the store); a name is unique across replicas; a
// trust removal and a key revocation made through B are enforced by A
// after their acknowledgement (the delay is logged, not asserted); both replicas write
// checkpoints into one audit log that verifies.
//
// The replicas start one after the other, and keys are created through
// one replica at a time before the other uses them, because of how
// SoftHSM2 2.6 shares a token between processes (README, "Running several
// replicas"): a process that writes the token adopts its generation
// counter, so an object another process created just before stays
// invisible to it until some process writes again. A network HSM has no
// such per-process index.
func TestReplicasShareState(t *testing.T) {
	rs := newReplicaSet(t, 3, nil)
	a := rs.start(t, "--audit-checkpoint-interval", "1s")
	b := rs.start(t, "--audit-checkpoint-interval", "1s")
	ca, cb := relDial(t, a), relDial(t, b)
	ctx := context.Background()

	mustSignctl(t, a, "key", "create", "release", "--algorithm", "ed25519")
	mustSignctl(t, b, "trust", "add", "--org", "acme", "--key", "release")

	// Sign through A, verify through B: the document, and the record.
	dg, resp, err := repSign(ctx, ca, "release")
	if err != nil {
		t.Fatalf("Sign through A: %v", err)
	}
	fp := resp.GetKeyFingerprint()
	vctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	v, err := cb.Signer.Verify(vctx, &signerv1.VerifyRequest{Org: "acme", Digest: dg, SignatureDocument: resp.GetSignatureDocument()})
	cancel()
	if err != nil || !v.GetVerified() || v.GetSignerFingerprint() != fp {
		t.Fatalf("Verify through B of A's signature document: %v %v", v, err)
	}
	if v, err := repVerify(cb, "acme", dg); err != nil || !v.GetVerified() {
		t.Fatalf("Verify through B from A's record: %v %v", v, err)
	}

	// A key created through B signs through A.
	mustSignctl(t, b, "key", "create", "second", "--algorithm", "ed25519")
	if _, _, err := repSign(ctx, ca, "second"); err != nil {
		t.Fatalf("Sign through A with a key created through B: %v", err)
	}

	// The same name created through both at once: exactly one wins.
	var wg sync.WaitGroup
	results := make([]error, 2)
	for i, c := range []*client.Client{ca, cb} {
		wg.Go(func() {
			cctx, cancel := context.WithTimeout(ctx, 20*time.Second)
			defer cancel()
			_, results[i] = c.Keys.CreateKey(cctx, &signerv1.CreateKeyRequest{Name: "contested", Algorithm: signerv1.Algorithm_ALGORITHM_ED25519})
		})
	}
	wg.Wait()
	if (results[0] == nil) == (results[1] == nil) {
		t.Fatalf("CreateKey of one name through both replicas: %v and %v; want exactly one success", results[0], results[1])
	}
	for _, err := range results {
		if err != nil && relReason(err) != "KEY_EXISTS" {
			t.Fatalf("the losing CreateKey: %v, want KEY_EXISTS", err)
		}
	}

	// A's caches hold the key and acme's trust now…
	if v, err := repVerify(ca, "acme", dg); err != nil || !v.GetVerified() {
		t.Fatalf("Verify through A: %v %v", v, err)
	}
	// …and a trust removal through B reaches A (the delay is logged).
	rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	_, err = cb.Trust.RemoveTrust(rctx, &signerv1.RemoveTrustRequest{Org: "acme", Fingerprint: fp})
	cancel()
	if err != nil {
		t.Fatalf("RemoveTrust through B: %v", err)
	}
	took := repRefusedEventually(t, "Verify through A after a trust removal through B", time.Now(), 30*time.Second, "KEY_REVOKED", func() error {
		_, err := repVerify(ca, "acme", dg)
		return err
	})
	t.Logf("trust removal through B enforced by A after %s", took.Round(time.Millisecond))

	// A key revocation through B stops signing through A (the delay is logged).
	if _, _, err := repSign(ctx, ca, "release"); err != nil {
		t.Fatalf("Sign through A before the revocation: %v", err)
	}
	rctx, cancel = context.WithTimeout(ctx, 10*time.Second)
	_, err = cb.Keys.RevokeKey(rctx, &signerv1.RevokeKeyRequest{Name: "release", Reason: signerv1.RevocationReason_REVOCATION_REASON_KEY_COMPROMISE})
	cancel()
	if err != nil {
		t.Fatalf("RevokeKey through B: %v", err)
	}
	took = repRefusedEventually(t, "Sign through A after a revocation through B", time.Now(), 30*time.Second, "KEY_REVOKED", func() error {
		_, _, err := repSign(ctx, ca, "release")
		return err
	})
	t.Logf("key revocation through B enforced by A after %s", took.Round(time.Millisecond))

	// One audit log, checkpointed by both, verified through either.
	headA, _ := repAuditIntact(t, a)
	relWaitFor(t, "a checkpoint at the head", 15*time.Second, func() bool {
		head, cp := repAuditIntact(t, b)
		return head >= headA && cp == head
	})
	if n := strings.Count(a.logs.String()+b.logs.String(), "audit key created"); n != 1 {
		t.Fatalf("%d audit keys created by two replicas, want 1", n)
	}
	// One log key too: both replicas sign notes of the one tree with it.
	if va, vb := loggedVerifierKey(t, a), loggedVerifierKey(t, b); va != vb {
		t.Fatalf("replicas log different verifier keys: %s and %s", va, vb)
	}
}

// repLoad runs clients that sign continuously through their replica (client
// i starts on replicas[i%len]) until stop closes; a client whose replica
// fails moves to the next one and retries the same digest there, as a
// client behind a load balancer would. It returns every signature
// acknowledged (hex digest → signature) and the calls that failed.
func repLoad(t *testing.T, replicas []*daemon, clients int, stop <-chan struct{}) (func() (map[string][]byte, int64), *atomic.Int64) {
	t.Helper()
	var (
		mu       sync.Mutex
		acked    = map[string][]byte{}
		failures atomic.Int64
		count    atomic.Int64
		wg       sync.WaitGroup
	)
	conns := make([]*client.Client, len(replicas))
	for i, d := range replicas {
		conns[i] = relDial(t, d)
	}
	for i := range clients {
		wg.Go(func() {
			at := i % len(conns)
			var dg []byte
			for {
				select {
				case <-stop:
					return
				default:
				}
				if dg == nil {
					dg = relDigest()
				}
				ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
				resp, err := conns[at].Signer.Sign(ctx, &signerv1.SignRequest{KeyName: "release", Digest: dg, ArtifactName: "load.so"})
				cancel()
				if err != nil {
					failures.Add(1)
					at = (at + 1) % len(conns)
					time.Sleep(10 * time.Millisecond)
					continue
				}
				mu.Lock()
				acked[hex.EncodeToString(dg)] = resp.GetSignature()
				mu.Unlock()
				count.Add(1)
				dg = nil
			}
		})
	}
	return func() (map[string][]byte, int64) {
		wg.Wait()
		mu.Lock()
		defer mu.Unlock()
		return acked, failures.Load()
	}, &count
}

// repPrepare creates the key "release" trusted by "acme" through d.
func repPrepare(t *testing.T, d *daemon) string {
	t.Helper()
	mustSignctl(t, d, "key", "create", "release", "--algorithm", "ed25519")
	mustSignctl(t, d, "trust", "add", "--org", "acme", "--key", "release")
	_, resp, err := repSign(context.Background(), relDial(t, d), "release")
	if err != nil {
		t.Fatal(err)
	}
	return resp.GetKeyFingerprint()
}

// TestReplicasEtcdMemberKilled: two replicas sign under load; the etcd
// leader is killed mid-load. Nothing acknowledged is lost: every
// signature a client received is in the records afterwards (each replica
// verifies it from them) and the audit log verifies.
func TestReplicasEtcdMemberKilled(t *testing.T) {
	rs := newReplicaSet(t, 3, nil)
	a := rs.start(t)
	b := rs.start(t)
	fp := repPrepare(t, a)

	stop := make(chan struct{})
	wait, count := repLoad(t, []*daemon{a, b}, 4, stop)
	relWaitFor(t, "signatures before the kill", 30*time.Second, func() bool { return count.Load() >= 40 })
	leader := max(rs.etcd.Leader(), 0)
	rs.etcd.Kill(leader)
	killedAt, since := count.Load(), time.Now()
	relWaitFor(t, "signatures after the kill", 60*time.Second, func() bool { return count.Load() >= killedAt+40 })
	close(stop)
	acked, failures := wait()
	t.Logf("etcd member %d (the leader) killed after %d signatures; 40 more in %s; %d acknowledged in all, %d calls failed and were retried on the other replica",
		leader, killedAt, time.Since(since).Round(time.Millisecond), len(acked), failures)

	for _, d := range []*daemon{a, b} {
		relVerifyFromRecords(t, d, "acme", fp, acked)
	}
	head, _ := repAuditIntact(t, b)
	if head < uint64(len(acked)) {
		t.Fatalf("audit head %d < %d acknowledged signatures", head, len(acked))
	}
	rs.etcd.Restart(leader)
}

// TestReplicaKilled: replica A is killed with SIGKILL mid-load; its clients
// continue on B. Every signature acknowledged by either is recorded, B
// verifies each, and the audit log verifies.
func TestReplicaKilled(t *testing.T) {
	rs := newReplicaSet(t, 3, nil)
	a := rs.start(t)
	b := rs.start(t)
	fp := repPrepare(t, a)

	stop := make(chan struct{})
	wait, count := repLoad(t, []*daemon{a, b}, 4, stop)
	relWaitFor(t, "signatures before the kill", 30*time.Second, func() bool { return count.Load() >= 40 })
	a.kill9(t)
	killedAt := count.Load()
	relWaitFor(t, "signatures through B after A died", 60*time.Second, func() bool { return count.Load() >= killedAt+40 })
	close(stop)
	acked, failures := wait()
	t.Logf("replica A killed after %d signatures; %d acknowledged in all, %d calls to A failed and moved to B", killedAt, len(acked), failures)
	relVerifyFromRecords(t, b, "acme", fp, acked)
	head, _ := repAuditIntact(t, b)
	if head < uint64(len(acked)) {
		t.Fatalf("audit head %d < %d acknowledged signatures", head, len(acked))
	}
}

// TestMigrateToEtcd: a signerd on bbolt signs, stops; `signerd store
// migrate` copies its database into etcd and verifies the copy; a replica
// on etcd with the same token verifies the old signatures from the copied
// records, signs on, and the audit log (the old records, the checkpoint
// written at shutdown, the new records) verifies.
func TestMigrateToEtcd(t *testing.T) {
	d := startDaemon(t, "--log-level", "info")
	fp := repPrepare(t, d)
	dir := t.TempDir()
	var digests []string
	for _, name := range []string{"a.so", "b.so", "c.so"} {
		f := writeFile(t, dir, name, []byte("package "+name))
		mustSignctl(t, d, "sign", f, "--key", "release")
		digests = append(digests, f)
	}
	c := relDial(t, d)
	acked := map[string][]byte{}
	for range 20 {
		dg, resp, err := repSign(context.Background(), c, "release")
		if err != nil {
			t.Fatal(err)
		}
		acked[hex.EncodeToString(dg)] = resp.GetSignature()
	}
	oldHead, _ := repAuditIntact(t, d)
	if err := d.stop(t); err != nil {
		t.Fatalf("stop: %v\n%s", err, d.logs.String())
	}

	rs := newReplicaSet(t, 3, d.tok)
	rs.prefix = "/prod/"
	out, err := execSignerd("store", "migrate", "--from", "bbolt:"+d.db, "--to", rs.store(), "--etcd-prefix", rs.prefix)
	if err != nil {
		t.Fatalf("store migrate: %v\n%s", err, out)
	}
	if !strings.Contains(out, "verified: the audit chain is intact") || !strings.Contains(out, "every checkpoint verifies") {
		t.Fatalf("store migrate output:\n%s", out)
	}
	t.Logf("store migrate:\n%s", out)
	// A second run refuses the now non-empty prefix.
	if out, err := execSignerd("store", "migrate", "--from", "bbolt:"+d.db, "--to", rs.store(), "--etcd-prefix", rs.prefix); err == nil || !strings.Contains(out, "not empty") {
		t.Fatalf("a second migration into the same prefix: %v\n%s", err, out)
	}

	r := rs.start(t)
	relVerifyFromRecords(t, r, "acme", fp, acked)
	for _, f := range digests {
		if res := signctl(t, r, "verify", f, "--org", "acme", "--signature", f+".sig"); res.code != 0 {
			t.Fatalf("verify %s through the etcd replica: %s %s", filepath.Base(f), res.stdout, res.stderr)
		}
	}
	if _, _, err := repSign(context.Background(), relDial(t, r), "release"); err != nil {
		t.Fatalf("Sign through the etcd replica after the migration: %v", err)
	}
	head, cp := repAuditIntact(t, r)
	if head <= oldHead || cp < oldHead {
		t.Fatalf("after the migration: head %d, newest checkpoint %d; the bbolt log ended at %d with a checkpoint at shutdown", head, cp, oldHead)
	}
}

// execSignerd runs the signerd binary with args and returns its combined
// output.
func execSignerd(args ...string) (string, error) {
	out, err := exec.Command(bins.signerd, args...).CombinedOutput()
	return string(out), err
}
