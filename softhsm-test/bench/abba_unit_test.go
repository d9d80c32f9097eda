package bench

import (
	"math"
	"slices"
	"testing"
	"time"
)

func TestABBAOrderAndHalves(t *testing.T) {
	for _, tc := range []struct {
		name string
		w    window
		want window
	}{
		{"timed", window{warm: 500 * time.Millisecond, dur: 4 * time.Second}, window{warm: 500 * time.Millisecond, dur: 2 * time.Second}},
		{"counted", window{ops: 64}, window{ops: 32}},
		{"one operation", window{ops: 1}, window{ops: 1}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var calls []string
			side := func(name string) func(window, string) phase {
				return func(w window, label string) phase {
					if w != tc.want {
						t.Errorf("%s%s got window %+v, want %+v", name, label, w, tc.want)
					}
					calls = append(calls, name+label)
					return phase{}
				}
			}
			abba(tc.w, side("A"), side("B"))
			if want := []string{"Aa", "Ba", "Bb", "Ab"}; !slices.Equal(calls, want) {
				t.Errorf("order %v, want %v", calls, want)
			}
		})
	}
}

func TestPhaseMerge(t *testing.T) {
	near := func(a, b float64) bool { return math.Abs(a-b) < 1e-9 }
	for _, tc := range []struct {
		name                   string
		p, q                   phase
		rate, cpu, client, spc float64
		inWindow, total        int64
	}{
		{
			name: "unequal windows",
			// 100 in 2 s and 300 in 3 s: 400 in 5 s.
			p: phase{loadStats: loadStats{rate: 50, inWindow: 100, total: 120, perWorker: []int64{60, 40}, latencies: []time.Duration{1, 2}},
				sigsPerCommit: 12, serverCPU: 300, clientCPU: 40},
			q: phase{loadStats: loadStats{rate: 100, inWindow: 300, total: 360, perWorker: []int64{150, 150}, latencies: []time.Duration{3}},
				sigsPerCommit: 36, serverCPU: 200, clientCPU: 20},
			rate: 80, inWindow: 400, total: 480,
			// weighted by totals 120 and 360
			cpu: (120*300 + 360*200) / 480.0, client: (120*40 + 360*20) / 480.0,
			// 10 commits each
			spc: 24,
		},
		{
			name: "equal windows",
			p:    phase{loadStats: loadStats{rate: 10, inWindow: 20, total: 20, perWorker: []int64{20}}, sigsPerCommit: 5, serverCPU: 100},
			q:    phase{loadStats: loadStats{rate: 10, inWindow: 20, total: 20, perWorker: []int64{20}}, sigsPerCommit: 5, serverCPU: 100},
			rate: 10, inWindow: 40, total: 40, cpu: 100, spc: 5,
		},
		{
			name: "floor: no commits",
			p:    phase{loadStats: loadStats{rate: 10, inWindow: 20, total: 20}, serverCPU: 100},
			q:    phase{loadStats: loadStats{rate: 30, inWindow: 60, total: 60}, serverCPU: 200},
			rate: 20, inWindow: 80, total: 80, cpu: 175,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := tc.p.merge(tc.q)
			if !near(m.rate, tc.rate) || m.inWindow != tc.inWindow || m.total != tc.total {
				t.Errorf("rate %v inWindow %d total %d, want %v %d %d", m.rate, m.inWindow, m.total, tc.rate, tc.inWindow, tc.total)
			}
			if !near(m.serverCPU, tc.cpu) || !near(m.clientCPU, tc.client) || !near(m.sigsPerCommit, tc.spc) {
				t.Errorf("server CPU %v client CPU %v sigs/commit %v, want %v %v %v", m.serverCPU, m.clientCPU, m.sigsPerCommit, tc.cpu, tc.client, tc.spc)
			}
			if n := len(tc.p.latencies) + len(tc.q.latencies); len(m.latencies) != n {
				t.Errorf("%d latencies, want %d", len(m.latencies), n)
			}
			for i := range m.perWorker {
				var want int64
				for _, s := range []loadStats{tc.p.loadStats, tc.q.loadStats} {
					if i < len(s.perWorker) {
						want += s.perWorker[i]
					}
				}
				if m.perWorker[i] != want {
					t.Errorf("worker %d: %d, want %d", i, m.perWorker[i], want)
				}
			}
		})
	}
}
