package bench

import (
	"fmt"
	"time"
)

// Pairs measured ABBA.
//
// Issue #15's targets are ratios of signerd to the floor server of the same
// repetition, and this machine's speed drifts over tens of seconds: the
// in-process ceiling, the plainest measure of SoftHSM2, took 226–275 µs of
// CPU per Ed25519 signature from one repetition to the next, 74–143 µs per
// ECDSA one, and a slow stretch usually covered the phases of a whole
// repetition. Measured one after the other (signerd for a window, then the
// floor), a drift between the two windows went straight into the ratio:
// per-repetition ratios of one run spread 0.58–0.84. So each side of a
// pair runs twice, for half the window each, in the order A B B A: a drift
// that is linear over the four windows weighs on both sides equally, and
// each side's figures are its two halves summed.
//
// Between windows signerd is let go quiet (quiesce): its applier and index
// merges run behind the signatures they record, and what they did after
// signerd's window used to land in the floor's window (slowing the floor,
// not counted as signerd's CPU). Now it is counted in signerd's CPU per
// operation; signerd's rate is still what completed inside its windows.

// half is one of the two windows a measurement of w is split into.
func (w window) half() window {
	h := window{warm: w.warm, dur: w.dur / 2}
	if w.ops > 0 {
		h.ops = max(1, w.ops/2)
	}
	return h
}

// sideLabels name the two windows of each side in profile file names.
var sideLabels = [2]string{"a", "b"}

// abba measures a (signerd) and b (the floor server) as a, b, b, a, each
// on half of w, and returns each side's two windows combined.
func abba(w window, a, b func(w window, label string) phase) (pa, pb phase) {
	h := w.half()
	a1 := a(h, sideLabels[0])
	b1 := b(h, sideLabels[0])
	b2 := b(h, sideLabels[1])
	a2 := a(h, sideLabels[1])
	return a1.merge(a2), b1.merge(b2)
}

// merge combines two windows of one side: counts and latencies add up,
// rates and per-operation figures are weighted by the operations behind
// them.
func (p phase) merge(q phase) phase {
	out := phase{loadStats: p.loadStats.merge(q.loadStats)}
	n := float64(p.total + q.total)
	if n > 0 {
		wp, wq := float64(p.total)/n, float64(q.total)/n
		out.serverCPU = wp*p.serverCPU + wq*q.serverCPU
		out.clientCPU = wp*p.clientCPU + wq*q.clientCPU
	}
	// signatures per commit: total over commits, each window's commits
	// being its total over its figure.
	if p.sigsPerCommit > 0 && q.sigsPerCommit > 0 {
		out.sigsPerCommit = n / (float64(p.total)/p.sigsPerCommit + float64(q.total)/q.sigsPerCommit)
	}
	return out
}

// merge combines the load of two windows. Each rate is its window's
// in-window operations over the window's time, so the combined rate is
// all of them over both times.
func (a loadStats) merge(b loadStats) loadStats {
	out := loadStats{
		inWindow:  a.inWindow + b.inWindow,
		total:     a.total + b.total,
		latencies: append(append([]time.Duration(nil), a.latencies...), b.latencies...),
		perWorker: make([]int64, max(len(a.perWorker), len(b.perWorker))),
	}
	for i := range out.perWorker {
		if i < len(a.perWorker) {
			out.perWorker[i] += a.perWorker[i]
		}
		if i < len(b.perWorker) {
			out.perWorker[i] += b.perWorker[i]
		}
	}
	var secs float64
	for _, s := range []loadStats{a, b} {
		if s.rate > 0 {
			secs += float64(s.inWindow) / s.rate
		}
	}
	if secs > 0 {
		out.rate = float64(out.inWindow) / secs
	}
	return out
}

// quiesce waits until the process pid has used no more than one clock
// tick of CPU over quietFor (its background work is done), or until
// quiesceLimit has passed.
func quiesce(pid int) error {
	const (
		quietFor     = 100 * time.Millisecond
		quiesceLimit = 3 * time.Second
	)
	prev, err := procCPU(pid)
	if err != nil {
		return err
	}
	for deadline := time.Now().Add(quiesceLimit); time.Now().Before(deadline); {
		time.Sleep(quietFor)
		cur, err := procCPU(pid)
		if err != nil {
			return err
		}
		if cur-prev <= clockTick {
			return nil
		}
		prev = cur
	}
	return nil
}

// phaseName names a window's profile: the phase, the repetition, the half.
func phaseName(name string, rep int, label string) string {
	return fmt.Sprintf("%s-%d%s", name, rep+1, label)
}
