// Package metrics exposes signerd's Prometheus metrics. The layers below
// report through small observer interfaces they define themselves
// (service.Observer, server.CallObserver), so only this package and the
// composition root know Prometheus.
package metrics

import (
	"context"
	"fmt"
	"net"
	"net/http"
	httppprof "net/http/pprof"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/signerd/signerd/internal/version"
)

// Metrics holds every collector.
type Metrics struct {
	reg *prometheus.Registry

	calls        *prometheus.CounterVec
	callLatency  *prometheus.HistogramVec
	signatures   *prometheus.CounterVec
	verification *prometheus.CounterVec
	hsmWait      prometheus.Histogram
	hsmInUse     prometheus.Gauge
	hsmErrors    *prometheus.CounterVec
	hsmRecovered prometheus.Counter
	hsmUp        prometheus.Gauge
	refusedConns prometheus.Counter
}

// New registers signerd's collectors and the Go runtime and process ones.
func New() *Metrics {
	reg := prometheus.NewRegistry()
	m := &Metrics{
		reg: reg,
		calls: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "signerd_grpc_calls_total", Help: "gRPC calls by method and status code.",
		}, []string{"method", "code"}),
		callLatency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "signerd_grpc_call_duration_seconds", Help: "gRPC call latency by method.",
			Buckets: prometheus.ExponentialBuckets(0.0001, 2, 16), // 100µs .. ~3.3s
		}, []string{"method"}),
		signatures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "signerd_signatures_total", Help: "Signatures made and recorded, by key, algorithm and format.",
		}, []string{"key", "algorithm", "format"}),
		verification: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "signerd_verifications_total", Help: "Verify outcomes: VERIFIED, UNSIGNED_ADMITTED or the refusal reason.",
		}, []string{"outcome"}),
		hsmWait: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "signerd_hsm_wait_seconds", Help: "Time a request waited for an HSM session slot.",
			Buckets: prometheus.ExponentialBuckets(0.00001, 4, 12), // 10µs .. ~40s
		}),
		hsmInUse: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "signerd_hsm_sessions_in_use", Help: "HSM session slots in use.",
		}),
		hsmErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "signerd_hsm_errors_total", Help: "HSM failures by class.",
		}, []string{"class"}),
		hsmRecovered: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "signerd_hsm_recoveries_total", Help: "Times the HSM connection was re-established after a fault.",
		}),
		hsmUp: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "signerd_hsm_up", Help: "1 when the HSM is reachable and logged in, else 0.",
		}),
		refusedConns: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "signerd_connections_refused_total", Help: "Connections closed because their peer already held --max-connections-per-peer, or its source its share of connections in their TLS handshake.",
		}),
	}
	// The Prometheus convention for "which build is this": a gauge of 1
	// whose labels say it, joinable onto any other series.
	v := version.Get()
	buildInfo := prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "signerd_build_info", Help: "Always 1; the labels say which build of signerd this is (as signerd --version).",
	}, []string{"version", "revision", "modified", "build_time", "goversion"})
	buildInfo.WithLabelValues(v.Version, v.Revision, fmt.Sprint(v.Modified), v.BuildTime, v.GoVersion).Set(1)
	reg.MustRegister(buildInfo)
	reg.MustRegister(m.calls, m.refusedConns, m.callLatency, m.signatures, m.verification, m.hsmWait, m.hsmInUse,
		m.hsmErrors, m.hsmRecovered, m.hsmUp,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// Registry returns the registry, for tests and extra collectors.
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

// ObserveCall implements server.CallObserver.
func (m *Metrics) ObserveCall(method, code string, d time.Duration) {
	m.calls.WithLabelValues(method, code).Inc()
	m.callLatency.WithLabelValues(method).Observe(d.Seconds())
}

// ConnectionRefused counts a connection refused by the per-peer limit.
func (m *Metrics) ConnectionRefused() { m.refusedConns.Inc() }

// Signed implements service.Observer.
func (m *Metrics) Signed(key, algorithm, format string) {
	m.signatures.WithLabelValues(key, algorithm, format).Inc()
}

// Verified implements service.Observer.
func (m *Metrics) Verified(outcome string) { m.verification.WithLabelValues(outcome).Inc() }

// HSMAcquired implements service.Observer.
func (m *Metrics) HSMAcquired(wait time.Duration) {
	m.hsmWait.Observe(wait.Seconds())
	m.hsmInUse.Inc()
}

// HSMReleased implements service.Observer.
func (m *Metrics) HSMReleased() { m.hsmInUse.Dec() }

// HSMError counts an HSM failure of a class ("unavailable", "session", ...).
func (m *Metrics) HSMError(class string) { m.hsmErrors.WithLabelValues(class).Inc() }

// HSMState records whether the HSM is up; a transition to up after down
// counts as a recovery.
func (m *Metrics) HSMState(up, recovered bool) {
	if up {
		m.hsmUp.Set(1)
	} else {
		m.hsmUp.Set(0)
	}
	if recovered {
		m.hsmRecovered.Inc()
	}
}

// GaugeFunc registers a gauge computed at scrape time (e.g. audit head,
// database commits).
func (m *Metrics) GaugeFunc(name, help string, f func() float64) {
	m.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: name, Help: help}, f))
}

// CounterFunc registers a counter computed at scrape time.
func (m *Metrics) CounterFunc(name, help string, f func() float64) {
	m.reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{Name: name, Help: help}, f))
}

// Serve serves /metrics on l until ctx ends, and Go's profiler under
// /debug/pprof/ when pprof is set (what an operator needs to see where a
// busy daemon's CPU goes). The listener is opened by the caller so that a
// bad --metrics-listen address fails start-up.
func (m *Metrics) Serve(ctx context.Context, l net.Listener, pprof bool) {
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{Registry: m.reg}))
	if pprof {
		// Registered on this mux only: importing net/http/pprof also
		// registers on http.DefaultServeMux, which signerd never serves.
		mux.HandleFunc("/debug/pprof/", httppprof.Index)
		mux.HandleFunc("/debug/pprof/cmdline", httppprof.Cmdline)
		mux.HandleFunc("/debug/pprof/profile", httppprof.Profile)
		mux.HandleFunc("/debug/pprof/symbol", httppprof.Symbol)
		mux.HandleFunc("/debug/pprof/trace", httppprof.Trace)
	}
	// Every phase of a connection is bounded, so that a slow or idle
	// client gives its slot (of the caller's connection cap) back: a
	// request must arrive within ReadTimeout, its answer be taken within
	// WriteTimeout (long enough for a CPU profile when the profiler is
	// served: /debug/pprof/profile refuses to run longer than it), and a
	// kept-alive connection may idle for IdleTimeout.
	write := 15 * time.Second
	if pprof {
		write = 2 * time.Minute
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second, ReadTimeout: 10 * time.Second,
		WriteTimeout: write, IdleTimeout: 30 * time.Second, MaxHeaderBytes: 16 << 10}
	go func() { _ = srv.Serve(l) }()
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	}()
}
