package bench

import (
	"bufio"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// The etcd replicas' contention for the shared audit head, read from
// their Prometheus metrics (--metrics-listen) before and after a phase:
// transactions sent, compare-and-swap conflicts, commits, records, commit
// time. It explains the replica figures; it is logged, not asserted.

// contentionCounters are the counters each replica's /metrics is read for.
var contentionCounters = []string{
	"signerd_etcd_txns_total", "signerd_etcd_cas_conflicts_total", "signerd_etcd_txn_commits_total",
	"signerd_etcd_audit_records_total", "signerd_etcd_commit_seconds_total", "signerd_etcd_turn_timeouts_total",
}

// counters is one scrape of contentionCounters, by name.
type counters map[string]float64

// metricsAddr is the address d logged for its metrics listener.
func metricsAddr(t *testing.T, d *daemon) string {
	t.Helper()
	m := regexp.MustCompile(`serving Prometheus metrics" addr=(\S+)`).FindStringSubmatch(d.logs.String())
	if m == nil {
		t.Fatalf("no metrics address in the log:\n%s", d.logs.String())
	}
	return m[1]
}

// scrape reads contentionCounters from the /metrics at addr.
func scrape(t *testing.T, addr string) counters {
	t.Helper()
	return scrapeNames(t, addr, contentionCounters...)
}

// scrapeOne reads one counter or gauge from the /metrics at addr.
func scrapeOne(t *testing.T, addr, name string) float64 {
	t.Helper()
	return scrapeNames(t, addr, name)[name]
}

// scrapeNames reads the named counters or gauges from the /metrics at
// addr; a missing or unreadable one fails the test.
func scrapeNames(t *testing.T, addr string, names ...string) counters {
	t.Helper()
	c := &http.Client{Timeout: 10 * time.Second}
	resp, err := c.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatalf("scrape %s: %v", addr, err)
	}
	defer resp.Body.Close()
	out := counters{}
	sc := bufio.NewScanner(io.LimitReader(resp.Body, 4<<20))
	sc.Buffer(make([]byte, 64<<10), 64<<10)
	for sc.Scan() {
		name, val, ok := strings.Cut(sc.Text(), " ")
		if !ok || !slices.Contains(names, name) {
			continue
		}
		v, err := strconv.ParseFloat(val, 64)
		if err != nil {
			t.Fatalf("scrape %s: %s = %q: %v", addr, name, val, err)
		}
		out[name] = v
	}
	if err := sc.Err(); err != nil {
		t.Fatalf("scrape %s: %v", addr, err)
	}
	for _, want := range names {
		if _, ok := out[want]; !ok {
			t.Fatalf("scrape %s: no %s", addr, want)
		}
	}
	return out
}

// sub is c - before, counter by counter.
func (c counters) sub(before counters) counters {
	out := counters{}
	for k, v := range c {
		out[k] = v - before[k]
	}
	return out
}

// add is c + o, counter by counter.
func (c counters) add(o counters) counters {
	out := counters{}
	for k, v := range c {
		out[k] = v + o[k]
	}
	for k, v := range o {
		if _, ok := c[k]; !ok {
			out[k] = v
		}
	}
	return out
}

// String says what the counters of a phase mean: conflicts per committed
// transaction, records per commit, mean commit latency.
func (c counters) String() string {
	commits := c["signerd_etcd_txn_commits_total"]
	if commits == 0 {
		return "no commits"
	}
	return fmt.Sprintf("%.0f commits, %.0f txns, %.2f conflicts/commit, %.1f records/commit, %.1f ms/commit, %.0f turn timeouts",
		commits, c["signerd_etcd_txns_total"], c["signerd_etcd_cas_conflicts_total"]/commits,
		c["signerd_etcd_audit_records_total"]/commits, 1000*c["signerd_etcd_commit_seconds_total"]/commits,
		c["signerd_etcd_turn_timeouts_total"])
}
