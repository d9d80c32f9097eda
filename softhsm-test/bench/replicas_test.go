package bench

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/health/grpc_health_v1"

	"github.com/signerd/signerd/client"
	signerv1 "github.com/signerd/signerd/gen/signer/v1"
	"github.com/signerd/signerd/internal/testutil/etcdtest"
	"github.com/signerd/signerd/internal/testutil/softhsm"
)

// Signing throughput with two replicas against one (issue #6): both on the
// same etcd cluster (3 members in the test process; 1 in the smoke run)
// and the same SoftHSM2 token. One point drives all the clients against
// replica A; the other splits the same clients between A and B. The ratio
// is informational: replicas buy availability, and they share one audit
// chain (README, "Running several replicas (etcd)").

const keyReplicas = "bench-replicas"

// replicas measures sign-unary-ed25519-1replica and -2replicas,
// repetition by repetition.
func (s *suite) replicas() []result {
	t := s.t
	members := 3
	if s.cfg.smoke {
		members = 1
	}
	cluster := etcdtest.Start(t, members, etcdtest.Options{Fsync: !s.cfg.smoke})
	tok := softhsm.NewToken(t)
	pinFile := tok.WritePINFile(t)
	store := "etcd:" + strings.Join(cluster.Endpoints(), ",")
	a := startReplica(t, tok, pinFile, store)
	signctl(t, a, "key", "create", keyReplicas, "--algorithm", "ed25519")
	b := startReplica(t, tok, pinFile, store)

	dial := func(d *daemon) *client.Client {
		c, err := client.DialUnix(d.socket)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		if _, err := c.Health.Check(context.Background(), &grpc_health_v1.HealthCheckRequest{}); err != nil {
			t.Fatal(err)
		}
		return c
	}
	// Each client has a connection to A and one to B.
	toA, toB := make([]*client.Client, s.cfg.clients), make([]*client.Client, s.cfg.clients)
	for i := range s.cfg.clients {
		toA[i], toB[i] = dial(a), dial(b)
	}
	load := func(conns func(i int) *client.Client) loadStats {
		st, err := closedLoop(s.cfg.clients, s.cfg.window(), func(i int) error {
			d := s.digest()
			resp, err := conns(i).Signer.Sign(context.Background(), &signerv1.SignRequest{KeyName: keyReplicas, Digest: d[:], ArtifactName: "bench"})
			if err == nil && len(resp.GetSignature()) != 64 {
				err = fmt.Errorf("Sign returned a %d-byte signature", len(resp.GetSignature()))
			}
			return err
		})
		if err != nil {
			t.Fatalf("%v\nreplica A:\n%s\nreplica B:\n%s", err, a.logs.String(), b.logs.String())
		}
		return st
	}
	note := fmt.Sprintf("SignerService.Sign, %d clients, closed loop; signerd on a %d-member etcd cluster in the benchmark process, one SoftHSM2 token", s.cfg.clients, members)
	one := &point{name: "sign-unary-ed25519-1replica", unit: "sigs/s", note: note + "; every client on replica A"}
	two := &point{name: "sign-unary-ed25519-2replicas", unit: "sigs/s", baseline: one.name,
		note: note + "; half the clients on replica A, half on B (no target: the replicas share one audit chain)"}
	mA, mB := metricsAddr(t, a), metricsAddr(t, b)
	both := func() counters { return scrape(t, mA).add(scrape(t, mB)) }
	for rep := range s.cfg.reps {
		c0 := both()
		r1 := load(func(i int) *client.Client { return toA[i] })
		c1 := both()
		r2 := load(func(i int) *client.Client {
			if i%2 == 0 {
				return toA[i]
			}
			return toB[i]
		})
		c2 := both()
		one.addValue(r1.rate)
		two.add(r2.rate, r1.rate, r2.rate/r1.rate)
		s.logf("replicas rep %d/%d: one replica %.0f/s, two replicas %.0f/s (%.2f); one: %s; two: %s",
			rep+1, s.cfg.reps, r1.rate, r2.rate, r2.rate/r1.rate, c1.sub(c0), c2.sub(c1))
	}
	a.stop(t)
	b.stop(t)
	return []result{one.result(), two.result()}
}

// startReplica starts signerd on an etcd store with the given token and
// waits until it serves.
func startReplica(t *testing.T, tok *softhsm.Token, pinFile, store string) *daemon {
	t.Helper()
	dir := t.TempDir()
	d := &daemon{
		tok:     tok,
		socket:  filepath.Join(dir, "run", "signerd.sock"),
		pinFile: pinFile,
		logs:    &syncBuffer{},
		exited:  make(chan error, 1),
	}
	d.run(t, nil, 30*time.Second,
		"--pkcs11-module", tok.ModulePath, "--token-label", tok.Label, "--pin-file", pinFile,
		"--store", store, "--socket", d.socket, "--log-level", "info", "--metrics-listen", "127.0.0.1:0")
	return d
}
