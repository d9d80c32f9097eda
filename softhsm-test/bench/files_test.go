package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/signerd/signerd/internal/skill"
)

// noise is a block of pseudo-random bytes (ChaCha8: incompressible) that
// test files are cut from: generating gigabytes would cost more CPU than
// the measurements, and SHA-256 costs the same whatever the bytes.
var noise = sync.OnceValue(func() []byte {
	b := make([]byte, 16<<20)
	_, _ = rand.NewChaCha8([32]byte{'s', 'i', 'g', 'n', 'e', 'r', 'd'}).Read(b)
	return b
})

// writeRandomFile writes size bytes of noise to path, starting at an
// offset that depends on seed so that files differ.
func writeRandomFile(path string, size int64, seed int) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	src := noise()
	off := int64(seed*4099) % int64(len(src))
	for left := size; left > 0; {
		chunk := src[off:min(int64(len(src)), off+min(left, 1<<20))]
		if _, err := f.Write(chunk); err != nil {
			f.Close()
			return err
		}
		left -= int64(len(chunk))
		off = (off + int64(len(chunk))) % int64(len(src))
	}
	return f.Close()
}

func sizeName(n int64) string {
	switch {
	case n >= 1<<30 && n%(1<<30) == 0:
		return fmt.Sprintf("%d GiB", n>>30)
	case n >= 1<<20 && n%(1<<20) == 0:
		return fmt.Sprintf("%d MiB", n>>20)
	}
	return fmt.Sprintf("%d B", n)
}

const mib = 1 << 20

// hashing compares signctl's hashing with `openssl dgst -sha256` over the
// same file, both as whole processes: the time to hash is a process's wall
// time on the big file minus the median of its wall time on a 1-byte file
// (which removes start-up and, for signctl, the dial and the Sign call), so
// throughput = size / (t_big - t_tiny). The file is in the page cache for
// both. Then signctl's peak RSS (rusage ru_maxrss of the child) on a small
// and a large file.
func (s *suite) hashing() []result {
	t := s.t
	dir := t.TempDir()
	big := filepath.Join(dir, "artifact.bin")
	tiny := filepath.Join(dir, "tiny.bin")
	small := filepath.Join(dir, "small.bin")
	large := filepath.Join(dir, "large.bin")
	start := time.Now()
	for _, f := range []struct {
		path string
		size int64
	}{{big, s.cfg.hashSize}, {tiny, 1}, {small, s.cfg.rssSmall}, {large, s.cfg.rssLarge}} {
		if err := writeRandomFile(f.path, f.size, len(f.path)); err != nil {
			t.Fatal(err)
		}
	}
	s.logf("wrote %s, %s and %s test files in %s", sizeName(s.cfg.hashSize), sizeName(s.cfg.rssSmall), sizeName(s.cfg.rssLarge), time.Since(start).Round(time.Millisecond))
	env := os.Environ()
	opensslRun := func(path string) run {
		r, err := command(env, "openssl", "dgst", "-sha256", path)
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	signRun := func(path string) run {
		r := signctl(t, s.d, "sign", path, "--key", keyEd)
		s.signed.Add(1)
		return r
	}
	medianWall := func(f func(string) run, path string) float64 {
		var ws []float64
		for range s.cfg.tinyRuns {
			ws = append(ws, f(path).wall.Seconds())
		}
		return median(ws)
	}
	// Warm the page cache, and check that both compute the same digest.
	want := strings.Fields(opensslRun(big).stdout)
	signRun(big)
	doc, err := os.ReadFile(big + ".sig")
	if err != nil {
		t.Fatal(err)
	}
	var sig struct {
		PackageHash string `json:"package_hash"`
	}
	if err := json.Unmarshal(doc, &sig); err != nil {
		t.Fatal(err)
	}
	if len(want) == 0 || want[len(want)-1] != sig.PackageHash {
		t.Fatalf("signctl's digest %s differs from openssl's %v", sig.PackageHash, want)
	}

	size := float64(s.cfg.hashSize) / mib
	ossl := &point{name: "hash-openssl-dgst-sha256", unit: "MiB/s",
		note: fmt.Sprintf("`openssl dgst -sha256` of a %s file: size / (wall - wall on a 1-byte file)", sizeName(s.cfg.hashSize))}
	sctl := &point{name: "hash-signctl-sha256", unit: "MiB/s", baseline: ossl.name, target: 0.95, cmp: ">=",
		note: fmt.Sprintf("`signctl sign` of the same %s file: size / (wall - wall on a 1-byte file)", sizeName(s.cfg.hashSize))}
	for rep := range s.cfg.reps {
		var o, c float64
		measure := []func(){
			func() { o = size / s.hashSeconds(opensslRun(big).wall.Seconds(), medianWall(opensslRun, tiny)) },
			func() { c = size / s.hashSeconds(signRun(big).wall.Seconds(), medianWall(signRun, tiny)) },
		}
		if rep%2 == 1 {
			measure[0], measure[1] = measure[1], measure[0]
		}
		for _, m := range measure {
			m()
		}
		ossl.addValue(o)
		sctl.add(c, o, div(c, o))
		s.logf("hash rep %d/%d: openssl %.0f MiB/s, signctl %.0f MiB/s (%.2f)", rep+1, s.cfg.reps, o, c, div(c, o))
	}

	rssS := &point{name: "hash-signctl-maxrss-small", unit: "MiB", note: fmt.Sprintf("peak RSS of `signctl sign` of a %s file (VmHWM, sampled every 2 ms)", sizeName(s.cfg.rssSmall))}
	rssL := &point{name: "hash-signctl-maxrss-large", unit: "MiB", baseline: rssS.name, note: fmt.Sprintf("peak RSS of `signctl sign` of a %s file (VmHWM, sampled every 2 ms)", sizeName(s.cfg.rssLarge))}
	growth := &point{name: "hash-signctl-maxrss-growth", unit: "MiB", baseline: "allowed-growth", target: 1, cmp: "<=",
		note: fmt.Sprintf("peak RSS(%s) - peak RSS(%s); ratio = growth / 16 MiB", sizeName(s.cfg.rssLarge), sizeName(s.cfg.rssSmall))}
	for range s.cfg.reps {
		rs, rl := signRun(small), signRun(large)
		if rs.maxRSS <= 0 || rl.maxRSS <= 0 {
			t.Fatal("signctl exited before its peak RSS could be read from /proc")
		}
		a := float64(rs.maxRSS) / mib
		b := float64(rl.maxRSS) / mib
		rssS.addValue(a)
		rssL.add(b, a, div(b, a))
		// A sampled peak can come out a little lower for the big file;
		// that is no growth, not negative growth.
		g := max(b-a, 0)
		growth.add(g, 16, g/16)
	}
	s.logf("signctl peak RSS: %.1f MiB (%s), %.1f MiB (%s)", median(rssS.values), sizeName(s.cfg.rssSmall), median(rssL.values), sizeName(s.cfg.rssLarge))
	for _, p := range []string{big, small, large} {
		_ = os.Remove(p) // gigabytes: do not wait for the end of the test
	}
	return []result{ossl.result(), sctl.result(), rssS.result(), rssL.result(), growth.result()}
}

// hashSeconds is the hashing time of a big-file run: its wall time minus
// the tiny-file wall time. Start-up noise can exceed a miniature run's
// hashing; the full suite's gigabyte cannot, and fails if it does.
func (s *suite) hashSeconds(big, tiny float64) float64 {
	s.t.Helper()
	if d := big - tiny; d > 0.001 {
		return d
	}
	if !s.cfg.smoke {
		s.t.Fatalf("hashing %s took %.3fs, a 1-byte file %.3fs: cannot subtract", sizeName(s.cfg.hashSize), big, tiny)
	}
	return 0.001
}

// canonicalizing compares skill.Canonicalize (parallel) with
// skill.CanonicalizeSequential (one WalkDir, hashing as it goes) on the
// same tree: each runs repeatedly for the window (the smoke run: twice),
// throughput = tree bytes × runs / elapsed. Both must produce the same root.
func (s *suite) canonicalizing() []result {
	t := s.t
	dir := filepath.Join(t.TempDir(), "skill")
	total, err := writeSkillTree(dir, s.cfg.treeFiles, s.cfg.maxLarge)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	par, err := skill.Canonicalize(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	seq, err := skill.CanonicalizeSequential(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	if par.Root != seq.Root || len(par.Files) != s.cfg.treeFiles {
		t.Fatalf("Canonicalize root %x (%d files), CanonicalizeSequential %x (%d files)", par.Root, len(par.Files), seq.Root, len(seq.Files))
	}
	tree := fmt.Sprintf("%d files, %.0f MiB", s.cfg.treeFiles, float64(total)/mib)
	seqP := &point{name: "skill-canonicalize-sequential-sha256", unit: "MiB/s", note: "skill.CanonicalizeSequential of a tree of " + tree}
	parP := &point{name: "skill-canonicalize-parallel-sha256", unit: "MiB/s", baseline: seqP.name, target: 1, cmp: ">",
		note: "skill.Canonicalize (GOMAXPROCS workers) of the same tree; same root checked"}
	timed := func(f func(context.Context, string) (skill.Manifest, error)) float64 {
		start := time.Now()
		runs := 0
		done := func() bool {
			if s.cfg.ops > 0 {
				return runs == 2
			}
			return runs > 0 && time.Since(start) >= s.cfg.dur
		}
		for !done() {
			if _, err := f(ctx, dir); err != nil {
				t.Fatal(err)
			}
			runs++
		}
		return float64(total) * float64(runs) / mib / time.Since(start).Seconds()
	}
	for rep := range s.cfg.reps {
		var a, b float64
		if rep%2 == 0 {
			a, b = timed(skill.CanonicalizeSequential), timed(skill.Canonicalize)
		} else {
			b, a = timed(skill.Canonicalize), timed(skill.CanonicalizeSequential)
		}
		seqP.addValue(a)
		parP.add(b, a, div(b, a))
		s.logf("canonicalize rep %d/%d: sequential %.0f MiB/s, parallel %.0f MiB/s (%.2f)", rep+1, s.cfg.reps, a, b, div(b, a))
	}
	return []result{seqP.result(), parP.result()}
}

// writeSkillTree writes n files under dir in nested directories, mostly
// small with some large ones (as skills with bundled data are), and
// returns their total size.
func writeSkillTree(dir string, n int, maxLarge int64) (int64, error) {
	rng := rand.New(rand.NewPCG(1, 2))
	var total int64
	for i := range n {
		var size int64
		switch r := rng.IntN(100); {
		case r < 70:
			size = 1<<10 + rng.Int64N(15<<10) // 1–16 KiB
		case r < 95:
			size = 16<<10 + rng.Int64N(240<<10) // 16–256 KiB
		default:
			size = 256<<10 + rng.Int64N(max(maxLarge-256<<10, 1)) // 256 KiB – maxLarge
		}
		sub := filepath.Join(dir, fmt.Sprintf("d%02d", i%40), fmt.Sprintf("s%d", i%7))
		if err := os.MkdirAll(sub, 0o755); err != nil {
			return 0, err
		}
		if err := writeRandomFile(filepath.Join(sub, fmt.Sprintf("f%05d.dat", i)), size, i); err != nil {
			return 0, err
		}
		total += size
	}
	return total, nil
}
