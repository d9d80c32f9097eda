// Package bench is signerd's benchmark suite (issue #5, `make bench`).
//
// Absolute numbers on a shared 2-core machine mean little, so every
// measurement is taken beside its ceiling, in the same run, on the same
// machine, interleaved repetition by repetition, and reported as a ratio:
// the daemon's signing rate against signing in-process with the same token
// and library, Verify against a gRPC round trip plus one in-process
// verification, signctl's hashing against `openssl dgst -sha256`, parallel
// skill canonicalization against a sequential walk-and-hash. Each point is
// repeated; the table reports medians (value, baseline, and the median of
// the per-repetition ratios). README.md, section "Performance", describes
// every method.
//
// TestBench is the full suite and only runs with SIGNERD_BENCH=1 (make
// bench): it takes minutes. TestBenchSmoke always runs the same pipeline in
// miniature, without asserting targets, so that the harness cannot rot.
package bench

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// Environment variables of the suite.
const (
	envBench    = "SIGNERD_BENCH"          // "1" runs TestBench
	envOut      = "SIGNERD_BENCH_OUT"      // where TestBench writes results.json
	envDuration = "SIGNERD_BENCH_DURATION" // measurement window of each point (default 4s)
	envRepeat   = "SIGNERD_BENCH_REPEAT"   // repetitions of each point (default 5)
	envOnly     = "SIGNERD_BENCH_ONLY"     // comma-separated groups to run (default all)
	envChild    = "SIGNERD_BENCH_CHILD"    // set in the in-process worker (child process)
	envProfile  = "SIGNERD_BENCH_PROFILE"  // a directory: CPU profiles of the daemon and the floor server per sign phase
)

var bins struct {
	signerd, signctl string
}

func TestMain(m *testing.M) {
	if os.Getenv(envChild) != "" {
		// The in-process ceilings run in a re-executed copy of this
		// binary: see inproc_test.go.
		os.Exit(childMain())
	}
	dir, err := os.MkdirTemp("", "signerd-bench-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	bins.signerd = filepath.Join(dir, "signerd")
	bins.signctl = filepath.Join(dir, "signctl")
	for bin, pkg := range map[string]string{bins.signerd: "../../cmd/signerd", bins.signctl: "../../cmd/signctl"} {
		// Built without -race even when the tests are: the suite measures
		// the binaries users run.
		out, err := exec.Command("go", "build", "-o", bin, pkg).CombinedOutput()
		if err != nil {
			fmt.Fprintf(os.Stderr, "build %s: %v\n%s", pkg, err, out)
			os.RemoveAll(dir)
			os.Exit(1)
		}
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// TestBench is the benchmark suite. It prints the table and writes
// results.json to $SIGNERD_BENCH_OUT (the Makefile passes var/bench/results.json).
func TestBench(t *testing.T) {
	if os.Getenv(envBench) != "1" {
		t.Skip("the benchmark suite takes minutes: run it with `make bench` (SIGNERD_BENCH=1)")
	}
	cfg := fullConfig()
	if v := os.Getenv(envDuration); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d <= 0 {
			t.Fatalf("%s=%q: not a positive duration", envDuration, v)
		}
		cfg.dur = d
	}
	if v := os.Getenv(envRepeat); v != "" {
		var n int
		if _, err := fmt.Sscan(v, &n); err != nil || n < 1 {
			t.Fatalf("%s=%q: not a positive integer", envRepeat, v)
		}
		cfg.reps = n
	}
	if v := os.Getenv(envOnly); v != "" {
		known := []string{"sign", "verify", "signctl", "hash", "canonicalize", "replicas", "network", "log"}
		for _, g := range strings.Split(v, ",") {
			if !slices.Contains(known, g) {
				t.Fatalf("%s=%q: %q is not one of %s", envOnly, v, g, strings.Join(known, ", "))
			}
			cfg.only = append(cfg.only, g)
		}
	}
	if v := os.Getenv(envProfile); v != "" {
		if err := os.MkdirAll(v, 0o755); err != nil {
			t.Fatalf("%s=%q: %v", envProfile, v, err)
		}
		var err error
		if cfg.profileDir, err = filepath.Abs(v); err != nil {
			t.Fatalf("%s=%q: %v", envProfile, v, err)
		}
	}
	out := os.Getenv(envOut)
	if out == "" {
		out = filepath.Join("..", "..", "var", "bench", "results.json")
	}
	start := time.Now()
	rs := runSuite(t, cfg)
	if t.Failed() {
		return
	}
	table := formatTable(rs, machineHeader(start))
	fmt.Print("\n" + table)
	if err := writeResults(out, rs, table); err != nil {
		t.Fatal(err)
	}
	fmt.Printf("wrote %s (%d measurements) in %s\n", out, len(rs), time.Since(start).Round(time.Second))
}

// TestBenchSmoke runs the whole pipeline in miniature (each point for a
// fraction of a second, no targets asserted) and checks the results file.
func TestBenchSmoke(t *testing.T) {
	start := time.Now()
	rs := runSuite(t, smokeConfig())
	if t.Failed() {
		return
	}
	out := filepath.Join(t.TempDir(), "bench", "results.json")
	table := formatTable(rs, machineHeader(start))
	if err := writeResults(out, rs, table); err != nil {
		t.Fatal(err)
	}
	checkResultsFile(t, out)
	t.Logf("smoke run in %s:\n%s", time.Since(start).Round(time.Millisecond), table)
}
