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
)

// startMetrics builds the Prometheus metrics and, when --metrics-listen is
// set, serves them over HTTP until ctx ends. The metrics are collected even
// when not served (they cost a few atomic adds per call).
func startMetrics(ctx context.Context, cfg Config, log *slog.Logger, st store.Store) (*metrics.Metrics, error) {
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
	if cfg.MetricsListen == "" {
		return m, nil // checkListen refused --metrics-pprof without it
	}
	l, err := net.Listen("tcp", cfg.MetricsListen)
	if err != nil {
		return nil, fmt.Errorf("--metrics-listen %s: %w", cfg.MetricsListen, err)
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
