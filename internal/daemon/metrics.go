package daemon

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"sync"

	"github.com/signerd/signerd/internal/metrics"
	"github.com/signerd/signerd/internal/server"
	"github.com/signerd/signerd/internal/store"
	"github.com/signerd/signerd/internal/store/boltstore"
	"github.com/signerd/signerd/internal/store/etcdstore"
)

// startMetrics builds the Prometheus metrics and, when --metrics-listen is
// set, serves them over HTTP until ctx ends. The metrics are collected even
// when not served (they cost a few atomic adds per call).
func startMetrics(ctx context.Context, cfg Config, log *slog.Logger, st store.Store, l net.Listener) (*metrics.Metrics, error) {
	m := metrics.New()
	m.GaugeFunc("signerd_audit_head_seq", "Sequence number of the newest audit record.", func() float64 {
		seq, _, err := st.AuditHead(context.Background())
		if err != nil {
			return -1
		}
		return float64(seq)
	})
	// Both backends count their commits: bbolt's fsync'd transactions, the
	// etcd transactions this replica committed (quorum commits).
	if c, ok := st.(interface{ Commits() uint64 }); ok {
		m.CounterFunc("signerd_db_commits_total", "Durable (fsync'd) database commits; with signatures_total it shows group commit at work.", func() float64 {
			return float64(c.Commits())
		})
	}
	// bbolt's digest index of signature records is log-structured: what
	// is pending is memory and the work of the next start.
	if c, ok := st.(interface{ IndexStats() boltstore.IndexStats }); ok {
		m.GaugeFunc("signerd_signature_index_pending", "Signature records indexed by digest only in memory, until the next merge into the database's index.", func() float64 {
			return float64(c.IndexStats().Pending)
		})
		m.CounterFunc("signerd_signature_index_merges_total", "Merges of pending signature index entries into the database.", func() float64 {
			return float64(c.IndexStats().Merges)
		})
		m.CounterFunc("signerd_signature_index_merge_failures_total", "Merges of the signature index that failed (the entries stay pending and the next merge retries).", func() float64 {
			return float64(c.IndexStats().MergeFailures)
		})
	}
	// bbolt's journal: records acknowledged and not yet in the file.
	if c, ok := st.(interface{ JournalStats() boltstore.JournalStats }); ok {
		m.GaugeFunc("signerd_journal_unapplied", "Records acknowledged in the journal and not yet applied to the database file.", func() float64 {
			return float64(c.JournalStats().Unapplied)
		})
		m.CounterFunc("signerd_journal_group_commits_total", "Group commits of the journal (one write and one fdatasync each).", func() float64 {
			return float64(c.JournalStats().Groups)
		})
		m.CounterFunc("signerd_journal_applies_total", "Transactions that applied journal records to the database file.", func() float64 {
			return float64(c.JournalStats().Applies)
		})
	}
	// On etcd, replicas advance one shared audit head by compare-and-swap:
	// these show how often they collide on it, and what a commit costs.
	if c, ok := st.(interface{ Contention() etcdstore.Contention }); ok {
		m.CounterFunc("signerd_etcd_txns_total", "Write transactions sent to etcd, committed or not (a retry counts again).", func() float64 {
			return float64(c.Contention().Txns)
		})
		m.CounterFunc("signerd_etcd_cas_conflicts_total", "Transactions refused because another replica moved the shared audit head first; each is retried on the new head.", func() float64 {
			return float64(c.Contention().Conflicts)
		})
		m.CounterFunc("signerd_etcd_txn_commits_total", "Write transactions etcd reported committed (as signerd_db_commits_total, less checkpoints and imports).", func() float64 {
			return float64(c.Contention().Commits)
		})
		m.CounterFunc("signerd_etcd_txn_unknown_total", "Write transactions etcd did not answer (a timeout, a member lost); each is resolved from the log before anything else is appended.", func() float64 {
			return float64(c.Contention().Unknown)
		})
		m.CounterFunc("signerd_etcd_txn_refused_total", "Write transactions refused with the audit head unmoved: what an exclusive change read had changed (it is prepared again), or a damaged log.", func() float64 {
			return float64(c.Contention().Refused)
		})
		m.CounterFunc("signerd_etcd_turn_timeouts_total", "Waits for another busy replica to append that ended by their grace period instead (the other had nothing to commit, or is gone).", func() float64 {
			return float64(c.Contention().TurnTimeouts)
		})
		m.CounterFunc("signerd_etcd_audit_records_total", "Audit records this replica appended to the shared log.", func() float64 {
			return float64(c.Contention().Records)
		})
		m.CounterFunc("signerd_etcd_commit_seconds_total", "Time from each batch's first try to its commit, retries included; over signerd_etcd_txn_commits_total, the mean commit latency.", func() float64 {
			return c.Contention().CommitTime.Seconds()
		})
	}
	if l == nil {
		return m, nil // checkListen refused --metrics-pprof without it
	}
	// Past the cap, scrapers wait in the kernel's accept queue, which
	// costs the daemon no descriptor (see raiseFileLimit).
	m.Serve(ctx, server.LimitListener(l, cfg.MetricsMaxConnections), cfg.MetricsPprof)
	log.Info("serving Prometheus metrics", "addr", l.Addr().String(), "path", "/metrics")
	if cfg.MetricsPprof {
		log.Warn("serving Go's profiler on the metrics address: anyone who can reach it can read goroutine stacks and profiles", "addr", l.Addr().String(), "path", "/debug/pprof/")
	}
	return m, nil
}

// hsmHealthMetrics turns the supervised key store's health reports into
// signerd_hsm_up, and counts each up→down transition as an HSM error and
// each down→up one as a recovery.
func hsmHealthMetrics(m *metrics.Metrics) func(up bool) {
	var mu sync.Mutex
	known, last := false, false
	return func(up bool) {
		mu.Lock()
		defer mu.Unlock()
		if known && up == last {
			return
		}
		recovered := known && up && !last
		if known && !up {
			m.HSMError("unavailable")
		}
		known, last = true, up
		m.HSMState(up, recovered)
	}
}

// listenMetrics takes --metrics-listen's address (nil without it), before
// anything else starts, so that a port in use stops start-up early.
func listenMetrics(cfg Config) (net.Listener, error) {
	if cfg.MetricsListen == "" {
		return nil, nil
	}
	l, err := net.Listen("tcp", cfg.MetricsListen)
	if err != nil {
		return nil, fmt.Errorf("--metrics-listen %s: %w", cfg.MetricsListen, err)
	}
	return l, nil
}
