package bench

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// window is when a point counts: operations that complete during
// [start+warm, start+warm+dur] are measured; the warm-up before lets
// caches, connections and session pools fill. When ops is set (the smoke
// run), there is no clock: exactly ops operations run and every one is
// measured, so a loaded machine makes the point slower, never empty.
type window struct {
	warm, dur time.Duration
	ops       int64
}

// loadStats is one measured point of a closed-loop load.
type loadStats struct {
	rate      float64         // operations completed in the window per second
	inWindow  int64           // operations completed in the window
	total     int64           // successful operations, warm-up and tail included
	latencies []time.Duration // of the operations completed in the window
	perWorker []int64         // operations completed in the window, by worker
}

// closedLoop runs op from `workers` goroutines, each calling it again as
// soon as it returns (a closed loop: each worker is one client with one
// request outstanding), until the window ends or, with w.ops, until w.ops
// operations have been started. The first error stops everything and is
// returned.
func closedLoop(workers int, w window, op func(worker int) error) (loadStats, error) {
	if w.ops > 0 {
		return countedLoop(workers, w.ops, op)
	}
	start := time.Now()
	t0 := start.Add(w.warm)
	t1 := t0.Add(w.dur)
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		firstErr error
		failed   = make(chan struct{})
		failOnce sync.Once
	)
	lat := make([][]time.Duration, workers)
	per := make([]int64, workers)
	totals := make([]int64, workers)
	for i := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-failed:
					return
				default:
				}
				s := time.Now()
				if s.After(t1) {
					return
				}
				if err := op(i); err != nil {
					mu.Lock()
					if firstErr == nil {
						firstErr = err
					}
					mu.Unlock()
					failOnce.Do(func() { close(failed) })
					return
				}
				e := time.Now()
				totals[i]++
				if !e.Before(t0) && !e.After(t1) {
					per[i]++
					lat[i] = append(lat[i], e.Sub(s))
				}
			}
		}()
	}
	wg.Wait()
	st := loadStats{perWorker: per}
	for i := range workers {
		st.inWindow += per[i]
		st.total += totals[i]
		st.latencies = append(st.latencies, lat[i]...)
	}
	st.rate = float64(st.inWindow) / w.dur.Seconds()
	if firstErr == nil && st.inWindow == 0 {
		firstErr = errors.New("no operation completed inside the measurement window")
	}
	return st, firstErr
}

// countedLoop is closedLoop by count: the workers share out exactly ops
// operations, all of them measured; the rate is ops over the time they
// took (reported, never asserted: nothing here can time out).
func countedLoop(workers int, ops int64, op func(worker int) error) (loadStats, error) {
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		firstErr error
		claimed  atomic.Int64
	)
	lat := make([][]time.Duration, workers)
	per := make([]int64, workers)
	start := time.Now()
	for i := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for claimed.Add(1) <= ops {
				mu.Lock()
				stop := firstErr != nil
				mu.Unlock()
				if stop {
					return
				}
				s := time.Now()
				if err := op(i); err != nil {
					mu.Lock()
					if firstErr == nil {
						firstErr = err
					}
					mu.Unlock()
					return
				}
				per[i]++
				lat[i] = append(lat[i], time.Since(s))
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	st := loadStats{perWorker: per}
	for i := range workers {
		st.inWindow += per[i]
		st.latencies = append(st.latencies, lat[i]...)
	}
	st.total = st.inWindow
	st.rate = float64(st.inWindow) / elapsed.Seconds()
	if firstErr == nil && st.inWindow != ops {
		firstErr = fmt.Errorf("%d of %d operations completed", st.inWindow, ops)
	}
	return st, firstErr
}

// percentile returns the q-quantile (0..1) of ds by the nearest-rank method.
func percentile(ds []time.Duration, q float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	i := int(math.Ceil(q*float64(len(s)))) - 1
	return s[min(max(i, 0), len(s)-1)]
}

// median of xs (the mean of the middle two for an even count).
func median(xs []float64) float64 {
	if len(xs) == 0 {
		return math.NaN()
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	n := len(s)
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}

// fairness is the least active worker's count over the mean count: 1 when
// every client got the same share, near 0 when one starved.
func fairness(per []int64) float64 {
	if len(per) == 0 {
		return math.NaN()
	}
	var sum int64
	least := per[0]
	for _, n := range per {
		sum += n
		least = min(least, n)
	}
	if sum == 0 {
		return 0
	}
	return float64(least) / (float64(sum) / float64(len(per)))
}

// div is a/b, or 0 when b is 0 (a counter that did not move in a
// miniature run): results.json cannot hold infinities.
func div(a, b float64) float64 {
	if b == 0 || math.IsNaN(b) {
		return 0
	}
	return a / b
}
