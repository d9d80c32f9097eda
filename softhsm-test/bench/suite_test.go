package bench

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/binary"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc/health/grpc_health_v1"

	"github.com/signerd/signerd/client"
	signerv1 "github.com/signerd/signerd/gen/signer/v1"
	"github.com/signerd/signerd/internal/pkgsig"
	"github.com/signerd/signerd/internal/skill"
	"github.com/signerd/signerd/internal/store/boltstore"
)

// config sizes a run.
type config struct {
	warm, dur  time.Duration // of each point (the full suite)
	ops        int64         // when set, each point is this many operations instead (the smoke run)
	reps       int           // repetitions of each point
	clients    int           // concurrent gRPC clients, one connection each
	hsmWorkers int           // goroutines of the in-process signing ceiling
	hashSize   int64         // the artifact hashed beside openssl
	rssSmall   int64         // the two artifacts whose peak RSS is compared
	rssLarge   int64
	tinyRuns   int   // runs on a 1-byte file per repetition (their median is subtracted)
	treeFiles  int   // files in the skill tree
	cliFiles   int   // files in one `signctl sign` command
	smoke      bool  // miniature: no targets are asserted anyway, names stay the same
	maxLarge   int64 // largest file in the skill tree
	// only, when set, limits the run to these groups: sign, verify,
	// signctl, hash, canonicalize, replicas, network, log.
	only []string
	// profileDir, when set, receives a CPU profile of the daemon for
	// each sign phase and of the floor server for each floor phase
	// (SIGNERD_BENCH_PROFILE): what the gap between them is made of.
	profileDir string
}

func fullConfig() config {
	return config{
		warm: 500 * time.Millisecond, dur: 4 * time.Second, reps: 5,
		clients: 32, hsmWorkers: 8,
		hashSize: 1 << 30, rssSmall: 100 << 20, rssLarge: 2 << 30, tinyRuns: 3,
		treeFiles: 4000, maxLarge: 1 << 20, cliFiles: 500,
	}
}

func smokeConfig() config {
	return config{
		ops: 64, reps: 1,
		clients: 8, hsmWorkers: 8,
		hashSize: 32 << 20, rssSmall: 1 << 20, rssLarge: 16 << 20, tinyRuns: 1,
		treeFiles: 60, maxLarge: 256 << 10, cliFiles: 4, smoke: true,
	}
}

func (c config) window() window { return window{warm: c.warm, dur: c.dur, ops: c.ops} }

const (
	keyEd    = "bench-ed25519"
	keyEC    = "bench-ecdsa"
	benchOrg = "bench"
)

// expectedResults are the names every run reports (checked by the smoke
// test against results.json).
var expectedResults = []string{
	"inproc-sign-ed25519", "sign-unary-ed25519", "sign-unary-ed25519-floor", "sign-unary-ed25519-p99", "sign-unary-ed25519-fairness",
	"sign-batch-ed25519", "sign-batch-ed25519-floor", "group-commit-sign-unary-ed25519", "group-commit-sign-batch-ed25519",
	"inproc-sign-ecdsa-p256", "sign-unary-ecdsa-p256", "sign-unary-ecdsa-p256-floor", "sign-unary-ecdsa-p256-p99", "sign-unary-ecdsa-p256-fairness",
	"group-commit-sign-unary-ecdsa-p256",
	"inproc-sign-ed25519-cpu", "sign-unary-ed25519-cpu-daemon", "sign-unary-ed25519-cpu-clients",
	"sign-batch-ed25519-cpu-daemon", "sign-batch-ed25519-cpu-clients",
	"sign-unary-ed25519-floor-cpu-server", "sign-unary-ecdsa-p256-floor-cpu-server", "sign-batch-ed25519-floor-cpu-server",
	"sign-unary-ed25519-floor-cpu-clients", "sign-unary-ecdsa-p256-floor-cpu-clients", "sign-batch-ed25519-floor-cpu-clients",
	"inproc-sign-ecdsa-p256-cpu", "sign-unary-ecdsa-p256-cpu-daemon", "sign-unary-ecdsa-p256-cpu-clients",
	"grpc-health-rtt", "inproc-verify-ed25519", "verify-ceiling-ed25519", "verify-unary-ed25519", "verify-unary-ed25519-floor", "verify-unary-ed25519-repeat",
	"grpc-health-rtt-cpu-daemon", "inproc-verify-ed25519-cpu", "verify-unary-ed25519-cpu-daemon",
	"sign-signctl-files-ed25519",
	"hash-openssl-dgst-sha256", "hash-signctl-sha256",
	"hash-signctl-maxrss-small", "hash-signctl-maxrss-large", "hash-signctl-maxrss-growth",
	"skill-canonicalize-sequential-sha256", "skill-canonicalize-parallel-sha256",
	"sign-unary-ed25519-1replica", "sign-unary-ed25519-2replicas", "replicas-2-vs-1",
	"sign-unary-ed25519-1replica-network-hsm", "sign-unary-ed25519-2replicas-network-hsm", "replicas-2-vs-1-network-hsm",
	"network-hsm-sign-ecdsa-sessions-1", "network-hsm-sign-ecdsa-sessions-8", "network-hsm-sign-ecdsa-sessions-32", "network-hsm-sessions-32-vs-1",
	"sign-unary-ed25519-vs-floor", "sign-unary-ecdsa-p256-vs-floor", "sign-batch-ed25519-vs-floor", "verify-unary-ed25519-vs-floor",
	"sign-ed25519-cpu-over-floor", "sign-ecdsa-p256-cpu-over-floor", "verify-unary-ed25519-floor-tables", "verify-unary-ed25519-vs-floor-tables",
	"network-hsm-sign-ed25519-sessions-1", "network-hsm-sign-ed25519-sessions-8", "network-hsm-sign-ed25519-sessions-32", "network-hsm-ed25519-sessions-32-vs-1",
	"log-fill-1m-leaves", "log-inclusion-proof-1m-leaves", "log-consistency-proof-1m-leaves",
}

// suite is one run: a daemon, its keys, the in-process worker, clients.
type suite struct {
	t     *testing.T
	cfg   config
	d     *daemon
	child *inproc
	conns []*client.Client
	// floor are clients of the child's floor server (inproc_test.go).
	floor []*client.Client
	// ext signs the Verify measurement's documents (externalSigner).
	ext *externalSigner
	// signed counts every signature the daemon returned, by every path,
	// for the final check against the database.
	signed atomic.Int64
	seq    atomic.Uint64
	// ceilEd is the median in-process Ed25519 rate, for the signctl line.
	ceilEd float64
	start  time.Time
}

func runSuite(t *testing.T, cfg config) []result {
	s := &suite{t: t, cfg: cfg, start: time.Now()}
	s.setUp()
	s.logf("daemon, keys, in-process worker and %d clients ready", cfg.clients)
	var rs []result
	if cfg.runs("sign") {
		rs = append(rs, s.signing()...)
	}
	if cfg.runs("verify") {
		rs = append(rs, s.verifying()...)
	}
	if cfg.runs("signctl") {
		rs = append(rs, s.signctlMany()...)
	}
	if cfg.runs("hash") {
		rs = append(rs, s.hashing()...)
	}
	if cfg.runs("canonicalize") {
		rs = append(rs, s.canonicalizing()...)
	}
	s.checkCommits()
	if cfg.runs("replicas") {
		rs = append(rs, s.replicas()...) // replicas_test.go: its own daemons, on etcd
	}
	if cfg.runs("network") {
		rs = append(rs, s.networkHSM()...) // networkhsm_test.go: p11-kit remoting and the forwarder, delayed
	}
	if cfg.runs("log") {
		rs = append(rs, s.logProofs()...) // log_test.go: proofs from a bbolt store of 1M records
	}
	return rs
}

// runs reports whether the group of points named g is part of this run:
// all of them unless SIGNERD_BENCH_ONLY names a subset (for iterating on
// one figure; a partial run's results.json lacks the others).
func (c config) runs(g string) bool {
	if len(c.only) == 0 {
		return true
	}
	return slices.Contains(c.only, g)
}

func (s *suite) logf(format string, args ...any) {
	s.t.Helper()
	args = append([]any{time.Since(s.start).Seconds()}, args...)
	if s.cfg.smoke {
		s.t.Logf("%5.1fs "+format, args...)
		return
	}
	fmt.Printf("%5.1fs  "+format+"\n", args...)
}

func (s *suite) setUp() {
	t := s.t
	s.d = startDaemon(t, s.cfg.profileDir != "")
	signctl(t, s.d, "key", "create", keyEd, "--algorithm", "ed25519")
	signctl(t, s.d, "key", "create", keyEC, "--algorithm", "ecdsa-p256")
	signctl(t, s.d, "trust", "add", "--org", benchOrg, "--key", keyEd)
	for range s.cfg.clients {
		c, err := client.DialUnix(s.d.socket)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		if _, err := c.Health.Check(context.Background(), &grpc_health_v1.HealthCheckRequest{}); err != nil {
			t.Fatal(err)
		}
		s.conns = append(s.conns, c)
	}
	s.ext = s.externalSigner()
	floorSocket := filepath.Join(t.TempDir(), "floor.sock")
	s.child = startInproc(t, s.d, s.daemonKeys(), floorSocket, s.ext.pub)
	// The floor server's clients: as many, made the same way. The child
	// listens before it answers its first request, and every floor phase
	// comes after one (the in-process ceiling), so no call races it.
	for range s.cfg.clients {
		c, err := client.DialUnix(floorSocket)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		s.floor = append(s.floor, c)
	}
}

// daemonKeys reads the CKA_ID and public key of the daemon's keys from a
// copy of its database and journal (the daemon holds the file's lock; it
// is idle, so the copy is a committed state, its journal applied; a copy
// of a running database is read only with its journal).
func (s *suite) daemonKeys() []childKey {
	t := s.t
	cp := filepath.Join(t.TempDir(), "copy.db")
	for _, suffix := range []string{"", ".journal"} {
		b, err := os.ReadFile(s.d.db + suffix)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(cp+suffix, b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	ctx := context.Background()
	st, err := boltstore.Open(ctx, cp, boltstore.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	var keys []childKey
	for _, name := range []string{keyEd, keyEC} {
		k, err := st.GetKey(ctx, name)
		if err != nil {
			t.Fatal(err)
		}
		v, ok := k.Current()
		if !ok {
			t.Fatalf("key %s has no current version", name)
		}
		keys = append(keys, childKey{Algorithm: k.Algorithm, CKAID: v.CKAID, PublicDER: v.PublicKey})
	}
	return keys
}

func (s *suite) digest() [32]byte {
	return sha256.Sum256(binary.BigEndian.AppendUint64([]byte("bench"), s.seq.Add(1)))
}

// phase is one measured load phase on signerd or on the floor server.
type phase struct {
	loadStats
	sigsPerCommit float64 // successful signatures per durable commit (signerd)
	serverCPU     float64 // µs of the server's CPU per operation
	clientCPU     float64 // µs of the clients' (this process's) CPU per operation
}

// commitPhase returns a window of one load phase on signerd, for abba,
// reported with the signatures per durable commit in it and the CPU signerd
// and the clients spent per signature. The window runs until signerd is
// quiet again, so that what its applier and merges did for the window's
// signatures is counted in it. Durable commits are signerd's
// signerd_db_commits_total: the journal's group commits (one fdatasync
// each) and bbolt's transactions (its applies of the journal, index
// merges, other writes).
func (s *suite) commitPhase(name string, rep int, load func(window) (loadStats, error)) func(window, string) phase {
	return func(w window, label string) phase {
		s.t.Helper()
		addr := metricsAddr(s.t, s.d)
		pid := s.d.cmd.Process.Pid
		before := scrapeOne(s.t, addr, "signerd_db_commits_total")
		cpu, err := startCPU(pid)
		if err != nil {
			s.t.Fatal(err)
		}
		prof := s.daemonProfile(addr, phaseName(name, rep, label), w)
		st, err := load(w)
		if err == nil {
			err = quiesce(pid)
		}
		prof()
		s.signed.Add(st.total)
		if err != nil {
			s.t.Fatalf("%v\nsignerd log:\n%s", err, s.d.logs.String())
		}
		p := phase{loadStats: st}
		if p.serverCPU, p.clientCPU, err = cpu.perOp(st.total); err != nil {
			s.t.Fatal(err)
		}
		after := scrapeOne(s.t, addr, "signerd_db_commits_total")
		if after <= before {
			s.t.Fatalf("no commit during a phase of %d signatures (commits %v → %v)", st.total, before, after)
		}
		p.sigsPerCommit = float64(st.total) / float64(after-before)
		return p
	}
}

// daemonProfile, with SIGNERD_BENCH_PROFILE set, starts a CPU profile of
// the daemon (its /debug/pprof/profile, for the phase's window) and
// returns what waits for it and writes it to name.pprof; otherwise it
// does nothing.
func (s *suite) daemonProfile(addr, name string, w window) (wait func()) {
	if s.cfg.profileDir == "" || w.dur <= 0 {
		return func() {}
	}
	secs := max(1, int((w.warm+w.dur+time.Second/2)/time.Second))
	done := make(chan error, 1)
	go func() {
		c := &http.Client{Timeout: time.Duration(secs+30) * time.Second}
		resp, err := c.Get(fmt.Sprintf("http://%s/debug/pprof/profile?seconds=%d", addr, secs))
		if err != nil {
			done <- err
			return
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			done <- fmt.Errorf("profile: %s", resp.Status)
			return
		}
		b, err := io.ReadAll(resp.Body)
		if err == nil {
			err = os.WriteFile(filepath.Join(s.cfg.profileDir, name+".pprof"), b, 0o644)
		}
		done <- err
	}()
	return func() {
		if err := <-done; err != nil {
			s.t.Fatalf("daemon profile %s: %v", name, err)
		}
	}
}

// floorProfile, with SIGNERD_BENCH_PROFILE set, profiles the child (its
// floor server) until the returned function is called.
func (s *suite) floorProfile(name string) (stop func()) {
	if s.cfg.profileDir == "" {
		return func() {}
	}
	if _, err := s.child.do(childRequest{Op: "profile-start", Path: filepath.Join(s.cfg.profileDir, name+".pprof")}); err != nil {
		s.t.Fatal(err)
	}
	return func() {
		if _, err := s.child.do(childRequest{Op: "profile-stop"}); err != nil {
			s.t.Fatal(err)
		}
	}
}

// inproc runs one measurement in the child and returns its rate and the
// child's CPU per operation (µs).
func (s *suite) inproc(op, alg string, workers int) (rate, cpuUS float64) {
	s.t.Helper()
	pid := s.child.cmd.Process.Pid
	c0, err := procCPU(pid)
	if err != nil {
		s.t.Fatal(err)
	}
	resp, err := s.child.do(childRequest{Op: op, Algorithm: alg, Workers: workers, Warm: s.cfg.warm, Dur: s.cfg.dur, Ops: s.cfg.ops})
	if err != nil {
		s.t.Fatal(err)
	}
	c1, err := procCPU(pid)
	if err != nil {
		s.t.Fatal(err)
	}
	return resp.Rate, float64(c1-c0) / 1e3 / float64(max(resp.Total, 1))
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// signing measures Sign (Ed25519), SignSkill (ECDSA P-256) and SignBatch
// against in-process signing, repetition by repetition.
func (s *suite) signing() []result {
	ceilEd := &point{name: "inproc-sign-ed25519", unit: "sigs/s",
		note: fmt.Sprintf("KeyStore.Signer(...).Sign in a child process on the daemon's token and key, %d goroutines (the daemon's --max-sessions)", s.cfg.hsmWorkers)}
	ceilEC := &point{name: "inproc-sign-ecdsa-p256", unit: "sigs/s", note: ceilEd.note + "; CKM_ECDSA"}
	unaryEd := &point{name: "sign-unary-ed25519", unit: "sigs/s", baseline: ceilEd.name, target: 0.8, cmp: ">=",
		note: fmt.Sprintf("SignerService.Sign, %d clients with a connection each, closed loop", s.cfg.clients)}
	unaryEC := &point{name: "sign-unary-ecdsa-p256", unit: "sigs/s", baseline: ceilEC.name, target: 0.8, cmp: ">=",
		note: fmt.Sprintf("SkillService.SignSkill (the RPC that signs with ECDSA P-256; one-file manifest), %d clients, closed loop", s.cfg.clients)}
	batch := &point{name: "sign-batch-ed25519", unit: "sigs/s", baseline: ceilEd.name, target: 0.95, cmp: ">=",
		note: "one SignBatch stream on one connection, requests sent as fast as flow control allows"}
	p99Ed := &point{name: "sign-unary-ed25519-p99", unit: "ms", baseline: "sign-unary-ed25519-p50", target: 3, cmp: "<=",
		note: "client-side latency of the calls completed in the window, all clients together"}
	p99EC := &point{name: "sign-unary-ecdsa-p256-p99", unit: "ms", baseline: "sign-unary-ecdsa-p256-p50", target: 3, cmp: "<=", note: p99Ed.note}
	fairEd := &point{name: "sign-unary-ed25519-fairness", unit: "min/mean", note: "calls of the least served client over the mean per client (1 = equal shares)"}
	fairEC := &point{name: "sign-unary-ecdsa-p256-fairness", unit: "min/mean", note: fairEd.note}
	gcNote := "successful signatures over durable commits (signerd_db_commits_total) during the phase, warm-up and signerd's quiet-down included"
	gcEd := &point{name: "group-commit-sign-unary-ed25519", unit: "sigs/commit", baseline: "one-commit-per-signature", target: 1, cmp: ">", note: gcNote}
	gcEC := &point{name: "group-commit-sign-unary-ecdsa-p256", unit: "sigs/commit", baseline: "one-commit-per-signature", target: 1, cmp: ">", note: gcNote}
	gcBatch := &point{name: "group-commit-sign-batch-ed25519", unit: "sigs/commit", baseline: "one-commit-per-signature", target: 1, cmp: ">", note: gcNote}

	floorNote := "SignerService.Sign on a server in the child that only calls the HSM (no checks, verification, record or audit; signerd's transport tuning), same %d clients: the best ratio any gRPC daemon could reach here"
	floorEd := &point{name: "sign-unary-ed25519-floor", unit: "sigs/s", baseline: ceilEd.name, note: fmt.Sprintf(floorNote, s.cfg.clients)}
	floorBatch := &point{name: "sign-batch-ed25519-floor", unit: "sigs/s", baseline: ceilEd.name,
		note: "SignerService.SignBatch on the floor server (128 items in flight at once, signerd's window, answered in order, nothing else), one stream as for sign-batch-ed25519"}
	floorEC := &point{name: "sign-unary-ecdsa-p256-floor", unit: "sigs/s", baseline: ceilEC.name, note: fmt.Sprintf(floorNote, s.cfg.clients)}
	cpuNote := "µs of CPU (user + system, all threads, from /proc/PID/stat) per signature over the phase, warm-up (and signerd's quiet-down after it) included"
	cpuCeilEd := &point{name: "inproc-sign-ed25519-cpu", unit: "µs/sig", note: cpuNote + "; the in-process child"}
	cpuCeilEC := &point{name: "inproc-sign-ecdsa-p256-cpu", unit: "µs/sig", note: cpuCeilEd.note}
	cpuUnaryEd := &point{name: "sign-unary-ed25519-cpu-daemon", unit: "µs/sig", baseline: cpuCeilEd.name, note: cpuNote + "; signerd"}
	cpuUnaryEC := &point{name: "sign-unary-ecdsa-p256-cpu-daemon", unit: "µs/sig", baseline: cpuCeilEC.name, note: cpuUnaryEd.note}
	cpuBatch := &point{name: "sign-batch-ed25519-cpu-daemon", unit: "µs/sig", baseline: cpuCeilEd.name, note: cpuUnaryEd.note}
	cliUnaryEd := &point{name: "sign-unary-ed25519-cpu-clients", unit: "µs/sig", note: cpuNote + "; the benchmark's gRPC clients (rusage)"}
	cliUnaryEC := &point{name: "sign-unary-ecdsa-p256-cpu-clients", unit: "µs/sig", note: cliUnaryEd.note}
	cpuFloorEd := &point{name: "sign-unary-ed25519-floor-cpu-server", unit: "µs/sig", baseline: cpuCeilEd.name, note: cpuNote + "; the floor server (child process)"}
	cpuFloorEC := &point{name: "sign-unary-ecdsa-p256-floor-cpu-server", unit: "µs/sig", baseline: cpuCeilEC.name, note: cpuFloorEd.note}
	cpuFloorBatch := &point{name: "sign-batch-ed25519-floor-cpu-server", unit: "µs/sig", baseline: cpuCeilEd.name, note: cpuFloorEd.note + ", SignBatch"}
	cliBatch := &point{name: "sign-batch-ed25519-cpu-clients", unit: "µs/sig", note: cliUnaryEd.note}
	// The floor server's clients: on these shared cores their CPU counts
	// in the rate as the server's does, and signerd's answers (the
	// signature document, key and time) are larger than the floor's bare
	// signature.
	cliFloorNote := cpuNote + "; the benchmark's gRPC clients of the floor server (rusage)"
	cliFloorEd := &point{name: "sign-unary-ed25519-floor-cpu-clients", unit: "µs/sig", note: cliFloorNote}
	cliFloorEC := &point{name: "sign-unary-ecdsa-p256-floor-cpu-clients", unit: "µs/sig", note: cliFloorNote}
	cliFloorBatch := &point{name: "sign-batch-ed25519-floor-cpu-clients", unit: "µs/sig", note: cliFloorNote + ", SignBatch"}

	// Issue #15's targets: signerd against the floor server of the same
	// repetition (what signerd adds, with the transport and the HSM
	// factored out), and the daemon's CPU per signature over the floor
	// server's.
	vsNote := "signerd's rate over the floor server's in the same repetition, measured in the order signerd, floor, floor, signerd on half windows (%s; median of the per-repetition ratios)"
	vsFloorEd := &point{name: "sign-unary-ed25519-vs-floor", unit: "sigs/s", baseline: floorEd.name, target: 0.85, cmp: ">=",
		note: fmt.Sprintf(vsNote, "SignerService.Sign, Ed25519, "+fmt.Sprint(s.cfg.clients)+" clients")}
	vsFloorEC := &point{name: "sign-unary-ecdsa-p256-vs-floor", unit: "sigs/s", baseline: floorEC.name, target: 0.8, cmp: ">=",
		note: fmt.Sprintf(vsNote, "SkillService.SignSkill against the floor's Sign, ECDSA P-256, "+fmt.Sprint(s.cfg.clients)+" clients")}
	vsFloorBatch := &point{name: "sign-batch-ed25519-vs-floor", unit: "sigs/s", baseline: floorBatch.name, target: 0.9, cmp: ">=",
		note: fmt.Sprintf(vsNote, "one SignBatch stream against the floor server's SignBatch")}
	overNote := "µs of the daemon's CPU per signature minus the floor server's in the same repetition; ratio is that difference in µs (median of the per-repetition differences), target the budget of 120 µs (DESIGN.md)"
	overEd := &point{name: "sign-ed25519-cpu-over-floor", unit: "µs/sig", baseline: cpuFloorEd.name, target: 120, cmp: "<=", note: overNote + "; Sign"}
	overEC := &point{name: "sign-ecdsa-p256-cpu-over-floor", unit: "µs/sig", baseline: cpuFloorEC.name, target: 120, cmp: "<=", note: overNote + "; SignSkill against the floor's Sign"}

	for rep := range s.cfg.reps {
		ce, cpuE := s.inproc("sign", "ed25519", s.cfg.hsmWorkers)
		ceilEd.addValue(ce)
		cpuCeilEd.addValue(cpuE)
		w := s.cfg.window()
		ue, fe := abba(w, s.commitPhase("sign-unary-ed25519", rep, s.unarySignEd), s.floorPhase("floor-"+keyEd, rep, s.floorSign(keyEd)))
		unaryEd.add(ue.rate, ce, div(ue.rate, ce))
		p50, p99 := ms(percentile(ue.latencies, 0.5)), ms(percentile(ue.latencies, 0.99))
		p99Ed.add(p99, p50, div(p99, p50))
		fairEd.addValue(fairness(ue.perWorker))
		gcEd.add(ue.sigsPerCommit, 1, ue.sigsPerCommit)
		cpuUnaryEd.add(ue.serverCPU, cpuE, div(ue.serverCPU, cpuE))
		cliUnaryEd.addValue(ue.clientCPU)
		floorEd.add(fe.rate, ce, div(fe.rate, ce))
		cpuFloorEd.add(fe.serverCPU, cpuE, div(fe.serverCPU, cpuE))
		cliFloorEd.addValue(fe.clientCPU)
		be, fb := abba(w, s.commitPhase("sign-batch-ed25519", rep, s.batchSignEd), s.floorPhase("floor-batch", rep, s.floorBatchSign))
		batch.add(be.rate, ce, div(be.rate, ce))
		gcBatch.add(be.sigsPerCommit, 1, be.sigsPerCommit)
		cpuBatch.add(be.serverCPU, cpuE, div(be.serverCPU, cpuE))
		cliBatch.addValue(be.clientCPU)
		floorBatch.add(fb.rate, ce, div(fb.rate, ce))
		cpuFloorBatch.add(fb.serverCPU, cpuE, div(fb.serverCPU, cpuE))
		cliFloorBatch.addValue(fb.clientCPU)
		vsFloorEd.add(ue.rate, fe.rate, div(ue.rate, fe.rate))
		vsFloorBatch.add(be.rate, fb.rate, div(be.rate, fb.rate))
		overEd.add(ue.serverCPU-fe.serverCPU, fe.serverCPU, ue.serverCPU-fe.serverCPU)

		cc, cpuC := s.inproc("sign", "ecdsa-p256", s.cfg.hsmWorkers)
		ceilEC.addValue(cc)
		cpuCeilEC.addValue(cpuC)
		uc, fc := abba(w, s.commitPhase("sign-unary-ecdsa-p256", rep, s.unarySignEC), s.floorPhase("floor-"+keyEC, rep, s.floorSign(keyEC)))
		unaryEC.add(uc.rate, cc, div(uc.rate, cc))
		p50, p99 = ms(percentile(uc.latencies, 0.5)), ms(percentile(uc.latencies, 0.99))
		p99EC.add(p99, p50, div(p99, p50))
		fairEC.addValue(fairness(uc.perWorker))
		gcEC.add(uc.sigsPerCommit, 1, uc.sigsPerCommit)
		cpuUnaryEC.add(uc.serverCPU, cpuC, div(uc.serverCPU, cpuC))
		cliUnaryEC.addValue(uc.clientCPU)
		floorEC.add(fc.rate, cc, div(fc.rate, cc))
		cpuFloorEC.add(fc.serverCPU, cpuC, div(fc.serverCPU, cpuC))
		cliFloorEC.addValue(fc.clientCPU)
		vsFloorEC.add(uc.rate, fc.rate, div(uc.rate, fc.rate))
		overEC.add(uc.serverCPU-fc.serverCPU, fc.serverCPU, uc.serverCPU-fc.serverCPU)
		s.logf("sign rep %d/%d: ed25519 in-process %.0f/s (%.0fµs CPU), unary %.0f/s = %.2f (p99/p50 %.1f, %.1f sigs/commit, %.0f+%.0fµs CPU), batch %.0f/s = %.2f (%.1f sigs/commit, %.0f+%.0fµs CPU), floor server %.0f/s = %.2f (%.0f+%.0fµs CPU), batch %.0f/s = %.2f (%.0f+%.0fµs CPU)",
			rep+1, s.cfg.reps, ce, cpuE, ue.rate, div(ue.rate, ce), p99Ed.ratios[rep], ue.sigsPerCommit, ue.serverCPU, ue.clientCPU, be.rate, div(be.rate, ce), be.sigsPerCommit, be.serverCPU, be.clientCPU, fe.rate, div(fe.rate, ce), fe.serverCPU, fe.clientCPU, fb.rate, div(fb.rate, ce), fb.serverCPU, fb.clientCPU)
		s.logf("sign rep %d/%d: ecdsa in-process %.0f/s (%.0fµs CPU), unary %.0f/s = %.2f (p99/p50 %.1f, %.1f sigs/commit, %.0f+%.0fµs CPU), floor server %.0f/s = %.2f (%.0f+%.0fµs CPU)",
			rep+1, s.cfg.reps, cc, cpuC, uc.rate, div(uc.rate, cc), p99EC.ratios[rep], uc.sigsPerCommit, uc.serverCPU, uc.clientCPU, fc.rate, div(fc.rate, cc), fc.serverCPU, fc.clientCPU)
	}
	s.ceilEd = median(ceilEd.values)
	var rs []result
	for _, p := range []*point{
		ceilEd, unaryEd, floorEd, p99Ed, fairEd, batch, floorBatch, gcEd, gcBatch,
		ceilEC, unaryEC, floorEC, p99EC, fairEC, gcEC,
		cpuCeilEd, cpuUnaryEd, cliUnaryEd, cpuFloorEd, cliFloorEd, cpuBatch, cliBatch, cpuFloorBatch, cliFloorBatch, cpuCeilEC, cpuUnaryEC, cliUnaryEC, cpuFloorEC, cliFloorEC,
		vsFloorEd, vsFloorEC, vsFloorBatch, overEd, overEC,
	} {
		rs = append(rs, p.result())
	}
	return rs
}

// floorPhase returns a window of load on the child's floor server, for
// abba, reported with the child's CPU per signature beside the rate.
func (s *suite) floorPhase(name string, rep int, load func(window) (loadStats, error)) func(window, string) phase {
	return func(w window, label string) phase {
		s.t.Helper()
		cpu, err := startCPU(s.child.cmd.Process.Pid)
		if err != nil {
			s.t.Fatal(err)
		}
		prof := s.floorProfile(phaseName(name, rep, label))
		st, err := load(w)
		if err != nil {
			s.t.Fatalf("floor server: %v", err)
		}
		prof()
		p := phase{loadStats: st}
		if p.serverCPU, p.clientCPU, err = cpu.perOp(st.total); err != nil {
			s.t.Fatal(err)
		}
		return p
	}
}

// floorSign is the floor server's Sign with key, as unarySignEd and
// unarySignEC drive signerd.
func (s *suite) floorSign(key string) func(window) (loadStats, error) {
	return func(w window) (loadStats, error) {
		return closedLoop(len(s.floor), w, func(i int) error {
			d := s.digest()
			resp, err := s.floor[i].Signer.Sign(context.Background(), &signerv1.SignRequest{KeyName: key, Digest: d[:]})
			if err == nil && len(resp.GetSignature()) == 0 {
				err = errors.New("floor server returned no signature")
			}
			return err
		})
	}
}

// floorBatchSign is batchSignEd on the floor server.
func (s *suite) floorBatchSign(w window) (loadStats, error) { return s.batchSign(s.floor[0], w) }

func (s *suite) unarySignEd(w window) (loadStats, error) {
	return closedLoop(len(s.conns), w, func(i int) error {
		d := s.digest()
		resp, err := s.conns[i].Signer.Sign(context.Background(), &signerv1.SignRequest{KeyName: keyEd, Digest: d[:], ArtifactName: "bench"})
		if err == nil && len(resp.GetSignature()) != 64 {
			err = fmt.Errorf("Sign returned a %d-byte signature", len(resp.GetSignature()))
		}
		return err
	})
}

func (s *suite) unarySignEC(w window) (loadStats, error) {
	return closedLoop(len(s.conns), w, func(i int) error {
		d := s.digest()
		manifest := map[string]string{"SKILL.md": skill.FingerprintPrefix + hex.EncodeToString(d[:])}
		root, err := skill.ComputeRoot(manifest)
		if err != nil {
			return err
		}
		resp, err := s.conns[i].Skills.SignSkill(context.Background(), &signerv1.SignSkillRequest{
			KeyName: keyEC, Root: root[:], FileManifest: manifest, Domain: "bench.example.com", SkillName: "bench-skill"})
		if err == nil && len(resp.GetSignatureDocument()) == 0 {
			err = errors.New("SignSkill returned no document")
		}
		return err
	})
}

// batchOutstanding bounds the SignBatch items in flight: twice the
// server's window (128), as a client that has many files ready would keep
// it.
const batchOutstanding = 256

// batchSignEd streams Sign requests over one SignBatch stream until the
// window ends and counts the answers that arrive inside it (the smoke run:
// exactly cfg.ops requests, every answer counted).
func (s *suite) batchSignEd(w window) (loadStats, error) { return s.batchSign(s.conns[0], w) }

// batchSign is batchSignEd on any server: the daemon's or the floor's.
func (s *suite) batchSign(c *client.Client, w window) (loadStats, error) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	stream, err := c.Signer.SignBatch(ctx)
	if err != nil {
		return loadStats{}, err
	}
	start := time.Now()
	t0 := start.Add(w.warm)
	t1 := t0.Add(w.dur)
	var sent int64
	more := func() bool {
		if w.ops > 0 {
			return sent < w.ops
		}
		return time.Now().Before(t1)
	}
	// At most batchOutstanding items sent and not yet answered: enough to
	// keep the server's window full, few enough that the stream drains
	// promptly after the window (HTTP/2 flow control alone would let
	// megabytes of requests queue up).
	slots := make(chan struct{}, batchOutstanding)
	sendErr := make(chan error, 1)
	go func() {
		for ; more(); sent++ {
			select {
			case slots <- struct{}{}:
			case <-ctx.Done():
				sendErr <- ctx.Err()
				return
			}
			d := s.digest()
			if err := stream.Send(&signerv1.SignBatchRequest{Request: &signerv1.SignRequest{KeyName: keyEd, Digest: d[:], ArtifactName: "bench"}}); err != nil {
				sendErr <- err
				return
			}
		}
		sendErr <- stream.CloseSend()
	}()
	var st loadStats
	for {
		resp, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return st, err
		}
		if e := resp.GetError(); e != nil {
			return st, fmt.Errorf("SignBatch item failed: %s: %s", e.GetReason(), e.GetMessage())
		}
		<-slots
		st.total++
		if now := time.Now(); w.ops > 0 || !now.Before(t0) && !now.After(t1) {
			st.inWindow++
		}
	}
	if err := <-sendErr; err != nil && !errors.Is(err, io.EOF) {
		return st, err
	}
	if w.ops > 0 {
		if st.total != w.ops {
			return st, fmt.Errorf("SignBatch: %d of %d answers", st.total, w.ops)
		}
		st.rate = float64(st.total) / time.Since(start).Seconds()
		return st, nil
	}
	st.rate = float64(st.inWindow) / w.dur.Seconds()
	return st, nil
}

// verifying measures Verify (Ed25519, the signature document given)
// against the combined ceiling of a gRPC round trip and an in-process
// verification: with R the health-check rate of the same clients on the
// same socket and V the in-process verification rate on all cores, a call
// that needs both costs the machine at least 1/R + 1/V seconds, so the
// ceiling is C = 1 / (1/R + 1/V). Per client it is the same formula with
// R/n and V/n, scaled by n.
func (s *suite) verifying() []result {
	corpus := uint64(256)
	if s.cfg.smoke {
		corpus = 16
	}
	type item struct {
		digest, doc []byte
	}
	items := make([]item, corpus)
	for i := range items {
		d := s.digest()
		resp, err := s.conns[0].Signer.Sign(context.Background(), &signerv1.SignRequest{KeyName: keyEd, Digest: d[:], ArtifactName: "bench-verify"})
		if err != nil {
			s.t.Fatal(err)
		}
		s.signed.Add(1)
		items[i] = item{digest: d[:], doc: resp.GetSignatureDocument()}
	}
	ext := s.ext
	rtt := &point{name: "grpc-health-rtt", unit: "calls/s", note: fmt.Sprintf("grpc.health.v1.Health/Check, %d clients with a connection each, same socket", s.cfg.clients)}
	ver := &point{name: "inproc-verify-ed25519", unit: "verifies/s", note: fmt.Sprintf("pkgsig.Parse + pkgsig.Check of a Cloacina document, %d goroutines, child process", verifyWorkers())}
	ceil := &point{name: "verify-ceiling-ed25519", unit: "calls/s", note: "1 / (1/grpc-health-rtt + 1/inproc-verify-ed25519), per repetition"}
	verify := &point{name: "verify-unary-ed25519", unit: "calls/s", baseline: ceil.name, target: 0.85, cmp: ">=",
		note: fmt.Sprintf("SignerService.Verify with the signature document, %d clients, closed loop; every call a document never verified before (the daemon's verification cache cannot answer)", s.cfg.clients)}
	floorVerify := &point{name: "verify-unary-ed25519-floor", unit: "calls/s", baseline: ceil.name,
		note: "SignerService.Verify on the floor server: pkgsig.Parse + pkgsig.Check of the same fresh documents behind signerd's transport tuning, nothing else (no trust lookups, policy, authorization or metrics), same clients: the formula's ceiling measured as one process"}
	floorTables := &point{name: "verify-unary-ed25519-floor-tables", unit: "calls/s", baseline: ceil.name,
		note: "as verify-unary-ed25519-floor, but the floor server checks each signature on precomputed tables of the key (internal/edcheck), as signerd's Verify does for a key that verified 64 documents"}
	vsFloorTables := &point{name: "verify-unary-ed25519-vs-floor-tables", unit: "calls/s", baseline: floorTables.name,
		note: "verify-unary-ed25519 over verify-unary-ed25519-floor-tables in the same repetition: what signerd adds to the same verification"}
	vsFloor := &point{name: "verify-unary-ed25519-vs-floor", unit: "calls/s", baseline: floorVerify.name, target: 0.95, cmp: ">=",
		note: "verify-unary-ed25519 over verify-unary-ed25519-floor in the same repetition, the same fresh documents (median of the per-repetition ratios)"}
	repeat := &point{name: "verify-unary-ed25519-repeat", unit: "calls/s", baseline: rtt.name,
		note: fmt.Sprintf("as verify-unary-ed25519, but cycling through %d documents, as loaders re-verify the same packages: the verification cache answers", corpus)}
	cpuNote := "µs of CPU (user + system, all threads) per call over the phase, warm-up included"
	cpuRTT := &point{name: "grpc-health-rtt-cpu-daemon", unit: "µs/call", note: cpuNote + "; signerd"}
	cpuVer := &point{name: "inproc-verify-ed25519-cpu", unit: "µs/verify", note: cpuNote + "; the in-process child"}
	cpuVerify := &point{name: "verify-unary-ed25519-cpu-daemon", unit: "µs/call", baseline: "grpc-health-rtt-cpu-daemon+inproc-verify-ed25519-cpu", note: cpuNote + "; signerd"}
	var n atomic.Uint64
	for rep := range s.cfg.reps {
		meter, err := startCPU(s.d.cmd.Process.Pid)
		if err != nil {
			s.t.Fatal(err)
		}
		r, err := closedLoop(len(s.conns), s.cfg.window(), func(i int) error {
			_, err := s.conns[i].Health.Check(context.Background(), &grpc_health_v1.HealthCheckRequest{})
			return err
		})
		if err != nil {
			s.t.Fatal(err)
		}
		rttCPU, _, err := meter.perOp(r.total)
		if err != nil {
			s.t.Fatal(err)
		}
		v, verCPU := s.inproc("verify", "", verifyWorkers())
		c := div(1, div(1, r.rate)+div(1, v))
		if meter, err = startCPU(s.d.cmd.Process.Pid); err != nil {
			s.t.Fatal(err)
		}
		// Fresh documents: twice what the ceiling allows in the window,
		// signed beforehand. Should the calls outrun them (the ceiling is
		// measured at another moment of a noisy machine), the rest are
		// signed on the spot, still never seen by the daemon.
		fresh := ext.documents(int(2*c*(s.cfg.warm+s.cfg.dur).Seconds()) + 1024)
		var next, onTheSpot atomic.Uint64
		freshDoc := func() signedDoc {
			if k := next.Add(1) - 1; k < uint64(len(fresh)) {
				return fresh[k]
			}
			onTheSpot.Add(1)
			return ext.document()
		}
		vs, err := closedLoop(len(s.conns), s.cfg.window(), func(i int) error {
			d := freshDoc()
			return s.verifyCall(i, d.digest, d.doc)
		})
		if err != nil {
			s.t.Fatalf("%v\nsignerd log:\n%s", err, s.d.logs.String())
		}
		verifyCPU, _, err := meter.perOp(vs.total)
		if err != nil {
			s.t.Fatal(err)
		}
		if n := onTheSpot.Load(); n > 0 {
			s.logf("verify rep %d: %d documents signed during the window (more calls than prepared)", rep+1, n)
		}
		next.Store(0)
		fs, err := closedLoop(len(s.floor), s.cfg.window(), func(i int) error {
			d := freshDoc()
			resp, err := s.floor[i].Signer.Verify(context.Background(), &signerv1.VerifyRequest{Org: benchOrg, Digest: d.digest, SignatureDocument: d.doc})
			if err == nil && !resp.GetVerified() {
				err = errors.New("floor server did not verify")
			}
			return err
		})
		if err != nil {
			s.t.Fatalf("floor server Verify: %v", err)
		}
		floorVerify.add(fs.rate, c, div(fs.rate, c))
		vsFloor.add(vs.rate, fs.rate, div(vs.rate, fs.rate))
		next.Store(0)
		ft, err := closedLoop(len(s.floor), s.cfg.window(), func(i int) error {
			d := freshDoc()
			resp, err := s.floor[i].Signer.Verify(context.Background(), &signerv1.VerifyRequest{Org: floorTablesOrg, Digest: d.digest, SignatureDocument: d.doc})
			if err == nil && !resp.GetVerified() {
				err = errors.New("floor server did not verify")
			}
			return err
		})
		if err != nil {
			s.t.Fatalf("floor server Verify on tables: %v", err)
		}
		floorTables.add(ft.rate, c, div(ft.rate, c))
		vsFloorTables.add(vs.rate, ft.rate, div(vs.rate, ft.rate))
		rs, err := closedLoop(len(s.conns), s.cfg.window(), func(i int) error {
			it := items[n.Add(1)%corpus]
			return s.verifyCall(i, it.digest, it.doc)
		})
		if err != nil {
			s.t.Fatalf("%v\nsignerd log:\n%s", err, s.d.logs.String())
		}
		repeat.add(rs.rate, r.rate, div(rs.rate, r.rate))
		rtt.addValue(r.rate)
		ver.addValue(v)
		ceil.addValue(c)
		verify.add(vs.rate, c, div(vs.rate, c))
		cpuRTT.addValue(rttCPU)
		cpuVer.addValue(verCPU)
		cpuVerify.add(verifyCPU, rttCPU+verCPU, div(verifyCPU, rttCPU+verCPU))
		s.logf("verify rep %d/%d: rtt %.0f/s (%.0fµs CPU), in-process %.0f/s (%.0fµs CPU), ceiling %.0f/s, Verify %.0f/s = %.2f (%.0fµs CPU), floor server %.0f/s = %.2f, on tables %.0f/s = %.2f, repeated documents %.0f/s = %.2f of rtt",
			rep+1, s.cfg.reps, r.rate, rttCPU, v, verCPU, c, vs.rate, div(vs.rate, c), verifyCPU, fs.rate, div(fs.rate, c), ft.rate, div(ft.rate, c), rs.rate, div(rs.rate, r.rate))
	}
	return []result{rtt.result(), ver.result(), ceil.result(), verify.result(), floorVerify.result(), vsFloor.result(), floorTables.result(), vsFloorTables.result(), repeat.result(), cpuRTT.result(), cpuVer.result(), cpuVerify.result()}
}

// verifyCall is one Verify by client i that must admit the package.
func (s *suite) verifyCall(i int, digest, doc []byte) error {
	resp, err := s.conns[i].Signer.Verify(context.Background(), &signerv1.VerifyRequest{Org: benchOrg, Digest: digest, SignatureDocument: doc})
	if err == nil && !resp.GetVerified() {
		err = fmt.Errorf("Verify: not verified: %v", resp)
	}
	return err
}

// externalSigner is a vendor key outside the daemon that the bench org
// trusts: the suite signs with it in memory, so that the Verify
// measurement can use as many never-seen documents as it needs without
// spending the daemon's HSM on them.
type externalSigner struct {
	pub  ed25519.PublicKey
	priv ed25519.PrivateKey
	seq  atomic.Uint64
}

func (s *suite) externalSigner() *externalSigner {
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		s.t.Fatal(err)
	}
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		s.t.Fatal(err)
	}
	pemKey := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
	if _, err := s.conns[0].Trust.AddTrust(context.Background(), &signerv1.AddTrustRequest{
		Org: benchOrg, Key: &signerv1.AddTrustRequest_PublicKeyPem{PublicKeyPem: string(pemKey)}, DisplayName: "bench vendor"}); err != nil {
		s.t.Fatal(err)
	}
	return &externalSigner{pub: pub, priv: priv}
}

type signedDoc struct{ digest, doc []byte }

// document signs one fresh digest.
func (e *externalSigner) document() signedDoc {
	d := sha256.Sum256(binary.BigEndian.AppendUint64([]byte("bench vendor"), e.seq.Add(1)))
	sig := ed25519.Sign(e.priv, d[:])
	return signedDoc{digest: d[:], doc: pkgsig.NewDocument(d, e.pub, sig, time.Now()).Encode()}
}

// documents signs n fresh digests on all cores.
func (e *externalSigner) documents(n int) []signedDoc {
	out := make([]signedDoc, n)
	workers := runtime.GOMAXPROCS(0)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < n; i += workers {
				out[i] = e.document()
			}
		}()
	}
	wg.Wait()
	return out
}

// signctlMany runs `signctl sign` on many files at once (it signs them
// over one SignBatch stream): informational, a whole command's wall time.
func (s *suite) signctlMany() []result {
	dir := s.t.TempDir()
	args := []string{"sign"}
	for i := range s.cfg.cliFiles {
		p := filepath.Join(dir, fmt.Sprintf("pkg-%04d.so", i))
		if err := os.WriteFile(p, []byte(fmt.Sprintf("package %d\n", i)), 0o644); err != nil {
			s.t.Fatal(err)
		}
		args = append(args, p)
	}
	args = append(args, "--key", keyEd)
	p := &point{name: "sign-signctl-files-ed25519", unit: "files/s", baseline: "inproc-sign-ed25519",
		note: fmt.Sprintf("one `signctl sign` of %d small files: process wall time, start-up, hashing and each .sig's fsync'd atomic write included; baseline is the median in-process rate", s.cfg.cliFiles)}
	for range min(s.cfg.reps, 3) {
		r := signctl(s.t, s.d, args...)
		s.signed.Add(int64(s.cfg.cliFiles))
		rate := float64(s.cfg.cliFiles) / r.wall.Seconds()
		p.add(rate, s.ceilEd, div(rate, s.ceilEd))
	}
	for _, a := range args[1 : 1+s.cfg.cliFiles] {
		if _, err := os.Stat(a + ".sig"); err != nil {
			s.t.Fatal(err)
		}
	}
	s.logf("signctl sign of %d files: %.0f files/s", s.cfg.cliFiles, median(p.values))
	return []result{p.result()}
}

// checkCommits stops the daemon and checks the commit counting against
// bbolt itself, and the signature count against the database.
func (s *suite) checkCommits() {
	t := s.t
	for _, c := range s.conns {
		c.Close()
	}
	s.d.stop(t)
	ours, err := boltTxID(s.d.db)
	if err != nil {
		t.Fatal(err)
	}
	txid, n, err := boltCheck(s.d.db)
	if err != nil {
		t.Fatal(err)
	}
	if ours != txid {
		t.Errorf("meta page reader says txid %d, bbolt says %d: the commit counts are wrong", ours, txid)
	}
	if int64(n) != s.signed.Load() {
		t.Errorf("the database holds %d signature records; the suite counted %d signatures returned", n, s.signed.Load())
	}
	s.logf("checked: %d signatures recorded = %d returned; %d commits in all (bbolt agrees)", n, s.signed.Load(), txid)
}
