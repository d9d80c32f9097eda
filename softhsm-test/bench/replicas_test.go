package bench

import (
	"context"
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/health/grpc_health_v1"

	"github.com/signerd/signerd/client"
	signerv1 "github.com/signerd/signerd/gen/signer/v1"
	"github.com/signerd/signerd/internal/testutil/etcdtest"
	"github.com/signerd/signerd/internal/testutil/softhsm"
)

// Signing throughput with two replicas against one (issues #6, #15): both
// on the same etcd cluster (3 members in the test process, with fsync; 1
// in the smoke run) and the same SoftHSM2 token, sharing one audit log.
// One point drives all the clients against replica A; the other splits
// the same clients between A and B, repetition by repetition. Two setups:
//
//   - CPU-bound: the token's library directly, signerd's default
//     sessions. Everything shares the machine's two cores, so two
//     replicas can at best match one; replicas-2-vs-1 (target ≥ 0.9) says
//     what sharing one log costs them.
//   - Network HSM: each replica reaches the token through the test-only
//     forwarder sleeping SIGNERD_FWD_DELAY_MS=10 in each C_SignInit and
//     C_Sign, with --max-sessions 4, so each replica can sign at most
//     4 / 20 ms = 200 times a second however idle the cores: the HSM's
//     round trips bound it, as for a network HSM whose client library
//     offers a replica a few sessions. replicas-2-vs-1-network-hsm
//     (target ≥ 1.7) says whether a second replica adds its sessions'
//     worth, or whether the shared log serialises them.

const (
	keyReplicas    = "bench-replicas"
	replicaFwdMS   = 10
	replicaNetSess = 4
)

// replicas measures both setups.
func (s *suite) replicas() []result {
	t := s.t
	members := 3
	if s.cfg.smoke {
		members = 1
	}
	cluster := etcdtest.Start(t, members, etcdtest.Options{Fsync: !s.cfg.smoke})
	endpoints := strings.Join(cluster.Endpoints(), ",")
	note := fmt.Sprintf("SignerService.Sign (Ed25519), %d clients, closed loop; signerd on a %d-member etcd cluster in the benchmark process, one SoftHSM2 token", s.cfg.clients, members)

	cpu := s.replicaPair(replicaSetup{store: "etcd:" + endpoints, prefix: "/bench-cpu/"})
	one := &point{name: "sign-unary-ed25519-1replica", unit: "sigs/s", note: note + "; every client on replica A"}
	two := &point{name: "sign-unary-ed25519-2replicas", unit: "sigs/s", note: note + "; half the clients on replica A, half on B"}
	ratio := &point{name: "replicas-2-vs-1", unit: "sigs/s", baseline: one.name, target: 0.9, cmp: ">=",
		note: "sign-unary-ed25519-2replicas over -1replica, same repetition: CPU-bound, both replicas and etcd on the same two cores"}
	s.replicaReps("replicas (CPU-bound)", cpu, one, two, ratio)

	tok := softhsm.NewToken(t)
	fwdMS := strconv.Itoa(replicaFwdMS)
	fwd := tok.Forwarder(t, map[string]string{"DELAY_MS": fwdMS})
	net := s.replicaPair(replicaSetup{
		store: "etcd:" + endpoints, prefix: "/bench-network/", tok: tok, module: fwd,
		env:   []string{"SIGNERD_FWD_MODULE=" + tok.ModulePath, "SIGNERD_FWD_DELAY_MS=" + fwdMS},
		extra: []string{"--max-sessions", strconv.Itoa(replicaNetSess)},
	})
	noteNet := fmt.Sprintf("%s, each replica through the test-only forwarder sleeping %d ms in each C_SignInit and C_Sign, --max-sessions %d (at most %d sigs/s per replica)",
		note, replicaFwdMS, replicaNetSess, replicaNetSess*1000/(2*replicaFwdMS))
	oneNet := &point{name: "sign-unary-ed25519-1replica-network-hsm", unit: "sigs/s", note: noteNet + "; every client on replica A"}
	twoNet := &point{name: "sign-unary-ed25519-2replicas-network-hsm", unit: "sigs/s", note: noteNet + "; half the clients on replica A, half on B"}
	ratioNet := &point{name: "replicas-2-vs-1-network-hsm", unit: "sigs/s", baseline: oneNet.name, target: 1.7, cmp: ">=",
		note: "sign-unary-ed25519-2replicas-network-hsm over -1replica-network-hsm, same repetition: the HSM's round trips bound each replica"}
	s.replicaReps("replicas (network HSM)", net, oneNet, twoNet, ratioNet)

	for _, d := range []*daemon{cpu.a, cpu.b, net.a, net.b} {
		d.stop(t)
	}
	return []result{one.result(), two.result(), ratio.result(), oneNet.result(), twoNet.result(), ratioNet.result()}
}

// replicaSetup is how a pair of replicas reaches its token and store.
type replicaSetup struct {
	store, prefix string
	tok           *softhsm.Token // nil: a new token, its library loaded directly
	module        string         // "": the token's library
	env, extra    []string
}

// pair is two replicas, a key on them, and each client's connection to
// each; mA and mB are their metrics addresses.
type pair struct {
	a, b     *daemon
	toA, toB []*client.Client
	mA, mB   string
}

// replicaPair starts replica A, creates keyReplicas through it, starts B,
// and connects s.cfg.clients clients to each.
func (s *suite) replicaPair(cfg replicaSetup) *pair {
	t := s.t
	if cfg.tok == nil {
		cfg.tok = softhsm.NewToken(t)
	}
	if cfg.module == "" {
		cfg.module = cfg.tok.ModulePath
	}
	pinFile := cfg.tok.WritePINFile(t)
	p := &pair{}
	p.a = startReplica(t, cfg, pinFile)
	signctl(t, p.a, "key", "create", keyReplicas, "--algorithm", "ed25519")
	p.b = startReplica(t, cfg, pinFile)
	if !strings.Contains(p.b.logs.String(), "module="+cfg.module) {
		t.Fatalf("signerd did not load the module %s:\n%s", cfg.module, p.b.logs.String())
	}
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
	p.toA, p.toB = make([]*client.Client, s.cfg.clients), make([]*client.Client, s.cfg.clients)
	for i := range s.cfg.clients {
		p.toA[i], p.toB[i] = dial(p.a), dial(p.b)
	}
	p.mA, p.mB = metricsAddr(t, p.a), metricsAddr(t, p.b)
	return p
}

// replicaReps measures one replica and two, repetition by repetition,
// into one, two and ratio, and logs the replicas' contention counters of
// each. As signerd against the floor (abba), each repetition runs one,
// two, two, one on half windows and sums each side's halves, so that the
// machine's drift weighs on both.
func (s *suite) replicaReps(what string, p *pair, one, two, ratio *point) {
	t := s.t
	load := func(w window, conns func(i int) *client.Client) loadStats {
		st, err := closedLoop(s.cfg.clients, w, func(i int) error {
			d := s.digest()
			resp, err := conns(i).Signer.Sign(context.Background(), &signerv1.SignRequest{KeyName: keyReplicas, Digest: d[:], ArtifactName: "bench"})
			if err == nil && len(resp.GetSignature()) != 64 {
				err = fmt.Errorf("Sign returned a %d-byte signature", len(resp.GetSignature()))
			}
			return err
		})
		if err != nil {
			t.Fatalf("%v\nreplica A:\n%s\nreplica B:\n%s", err, p.a.logs.String(), p.b.logs.String())
		}
		return st
	}
	both := func() counters { return scrape(t, p.mA).add(scrape(t, p.mB)) }
	// CPU of both replicas, and of this process (etcd's members and the
	// clients), per signature of a phase (warm-up and tail included).
	cpu := func() (replicas, self time.Duration) {
		a, errA := procCPU(p.a.cmd.Process.Pid)
		b, errB := procCPU(p.b.cmd.Process.Pid)
		if errA != nil || errB != nil {
			t.Fatalf("replicas' CPU time: %v %v", errA, errB)
		}
		return a + b, selfCPU()
	}
	toOne := func(i int) *client.Client { return p.toA[i] }
	toTwo := func(i int) *client.Client {
		if i%2 == 0 {
			return p.toA[i]
		}
		return p.toB[i]
	}
	// side is one configuration's halves of a repetition, summed.
	type side struct {
		st             loadStats
		c              counters
		replicas, self time.Duration
	}
	measure := func(w window, conns func(i int) *client.Client, into *side) {
		c0 := both()
		r0, s0 := cpu()
		st := load(w, conns)
		r1, s1 := cpu()
		into.c = into.c.add(both().sub(c0))
		into.st = into.st.merge(st)
		into.replicas += r1 - r0
		into.self += s1 - s0
	}
	perSig := func(sd side) string {
		n := float64(max(sd.st.total, 1))
		return fmt.Sprintf("CPU %.0f µs/sig in the replicas, %.0f in etcd and the clients", float64(sd.replicas)/1e3/n, float64(sd.self)/1e3/n)
	}
	for rep := range s.cfg.reps {
		h := s.cfg.window().half()
		var o, b side
		measure(h, toOne, &o)
		measure(h, toTwo, &b)
		measure(h, toTwo, &b)
		measure(h, toOne, &o)
		r1, r2 := o.st.rate, b.st.rate
		one.addValue(r1)
		two.addValue(r2)
		ratio.add(r2, r1, r2/r1)
		s.logf("%s rep %d/%d: one replica %.0f/s, two replicas %.0f/s (%.2f); one: %s, %s; two: %s, %s",
			what, rep+1, s.cfg.reps, r1, r2, r2/r1, o.c, perSig(o), b.c, perSig(b))
	}
}

// startReplica starts signerd on an etcd store as cfg says, serving
// metrics on a free loopback port, and waits until it serves.
func startReplica(t *testing.T, cfg replicaSetup, pinFile string) *daemon {
	t.Helper()
	dir := t.TempDir()
	d := &daemon{
		tok:     cfg.tok,
		socket:  filepath.Join(dir, "run", "signerd.sock"),
		pinFile: pinFile,
		logs:    &syncBuffer{},
		exited:  make(chan error, 1),
	}
	args := []string{"--pkcs11-module", cfg.module, "--token-label", cfg.tok.Label, "--pin-file", pinFile,
		"--store", cfg.store, "--etcd-prefix", cfg.prefix, "--socket", d.socket, "--log-level", "info",
		"--metrics-listen", "127.0.0.1:0"}
	d.run(t, cfg.env, 30*time.Second, append(args, cfg.extra...)...)
	return d
}
