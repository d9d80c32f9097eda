package daemon

import (
	"context"
	"fmt"
	"log/slog"
	"net"

	"github.com/signerd/signerd/internal/metrics"
	"github.com/signerd/signerd/internal/store/boltstore"
)

// startMetrics builds the Prometheus metrics and, when --metrics-listen is
// set, serves them over HTTP until ctx ends. The metrics are collected even
// when not served (they cost a few atomic adds per call).
func startMetrics(ctx context.Context, cfg Config, log *slog.Logger, st *boltstore.Store) (*metrics.Metrics, error) {
	m := metrics.New()
	m.GaugeFunc("signerd_audit_head_seq", "Sequence number of the newest audit record.", func() float64 {
		seq, _, err := st.AuditHead(context.Background())
		if err != nil {
			return -1
		}
		return float64(seq)
	})
	m.CounterFunc("signerd_db_commits_total", "Durable (fsync'd) database commits; with signatures_total it shows group commit at work.", func() float64 {
		return float64(st.Commits())
	})
	if cfg.MetricsListen == "" {
		return m, nil
	}
	l, err := net.Listen("tcp", cfg.MetricsListen)
	if err != nil {
		return nil, fmt.Errorf("--metrics-listen %s: %w", cfg.MetricsListen, err)
	}
	m.Serve(ctx, l)
	log.Info("serving Prometheus metrics", "addr", l.Addr().String(), "path", "/metrics")
	return m, nil
}
