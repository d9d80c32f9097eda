package softhsmtest

import (
	"context"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/signerd/signerd/client"
)

// TestReplicasContendForHead (issue #15): two replicas sign concurrently
// on one etcd cluster, advancing one audit log by compare-and-swap. Counted
// through their metrics and the log, not timed: every signature a client
// got is recorded once and verifies through the other replica; the log
// grew by exactly the records the two replicas say they appended, and
// verifies (one chain, no gap); both replicas committed; and every
// transaction either committed or lost the compare-and-swap to the other
// replica and was retried, or went unanswered and was resolved (txns =
// commits + conflicts + unknown on each).
func TestReplicasContendForHead(t *testing.T) {
	rs := newReplicaSet(t, 3, nil)
	a := rs.start(t, "--metrics-listen", "127.0.0.1:0")
	repPrepare(t, a)
	b := rs.start(t, "--metrics-listen", "127.0.0.1:0")
	replicas := []*daemon{a, b}
	conns := []*client.Client{relDial(t, a), relDial(t, b)}
	headBefore, _ := repAuditIntact(t, a)
	before := []map[string]float64{scrapeSums(t, a), scrapeSums(t, b)}

	const clients, each = 16, 12 // clients alternate between the replicas
	var (
		wg     sync.WaitGroup
		mu     sync.Mutex
		signed = map[string]int{} // digest → replica that signed it
		errs   = make(chan error, clients*each)
	)
	for i := range clients {
		wg.Go(func() {
			for range each {
				dg, _, err := repSign(context.Background(), conns[i%2], "release")
				if err != nil {
					errs <- err
					return
				}
				mu.Lock()
				signed[string(dg)] = i % 2
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("Sign: %v\nreplica A:\n%s\nreplica B:\n%s", err, a.logs.String(), b.logs.String())
	}
	if len(signed) != clients*each {
		t.Fatalf("%d distinct signatures, want %d", len(signed), clients*each)
	}

	headAfter, _ := repAuditIntact(t, b)
	var appended, sigs, unknown float64
	for i, d := range replicas {
		m := scrapeSums(t, d)
		delta := func(name string) float64 { return m[name] - before[i][name] }
		txns, commits, conflicts := delta("signerd_etcd_txns_total"), delta("signerd_etcd_txn_commits_total"), delta("signerd_etcd_cas_conflicts_total")
		refused, unanswered := delta("signerd_etcd_txn_refused_total"), delta("signerd_etcd_txn_unknown_total")
		t.Logf("replica %c: %.0f signatures, %.0f records in %.0f commits, %.0f transactions, %.0f conflicts, %.0f unanswered, %.0f turn timeouts",
			'A'+i, delta("signerd_signatures_total"), delta("signerd_etcd_audit_records_total"), commits, txns, conflicts, unanswered, delta("signerd_etcd_turn_timeouts_total"))
		if commits == 0 {
			t.Errorf("replica %c committed nothing", 'A'+i)
		}
		if refused != 0 || txns != commits+conflicts+unanswered {
			t.Errorf("replica %c: %.0f transactions, %.0f commits, %.0f conflicts, %.0f refused, %.0f unanswered: some transaction neither committed, nor lost to the other replica, nor went unanswered",
				'A'+i, txns, commits, conflicts, refused, unanswered)
		}
		unknown += unanswered
		appended += delta("signerd_etcd_audit_records_total")
		sigs += delta("signerd_signatures_total")
	}
	if sigs != clients*each {
		t.Errorf("the replicas count %.0f signatures, want %d", sigs, clients*each)
	}
	// A transaction etcd did not answer is resolved from the log; if it
	// had committed, its records are in the log but in no counter.
	if got := float64(headAfter - headBefore); (unknown == 0 && got != appended) || got < appended || got < clients*each {
		t.Errorf("the log grew by %.0f records; the replicas appended %.0f, for %d signatures", got, appended, clients*each)
	}
	// Each signature is in the records, whichever replica is asked.
	for dg, r := range signed {
		if v, err := repVerify(conns[1-r], "acme", []byte(dg)); err != nil || !v.GetVerified() {
			t.Fatalf("Verify through the other replica of a signature by replica %c: %v %v", 'A'+r, v, err)
		}
	}
}

// scrapeSums reads d's metrics, each name summed over its label sets.
func scrapeSums(t *testing.T, d *daemon) map[string]float64 {
	t.Helper()
	_, text := httpGet(t, "http://"+metricsAddr(t, d)+"/metrics")
	out := map[string]float64{}
	for line := range strings.SplitSeq(text, "\n") {
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		if i < 0 {
			continue
		}
		name := line[:i]
		if j := strings.IndexByte(name, '{'); j >= 0 {
			name = name[:j]
		}
		if v, err := strconv.ParseFloat(line[i+1:], 64); err == nil {
			out[name] += v
		}
	}
	return out
}
