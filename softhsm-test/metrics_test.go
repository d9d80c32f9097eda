package softhsmtest

import (
	"io"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"
)

// TestMetrics: --metrics-listen serves Prometheus metrics that count what
// happened.
func TestMetrics(t *testing.T) {
	d := startDaemon(t, "--metrics-listen", "127.0.0.1:0")
	addr := metricsAddr(t, d)
	dir := t.TempDir()
	mustSignctl(t, d, "key", "create", "release")
	mustSignctl(t, d, "trust", "add", "--org", "acme", "--key", "release")
	a, b := writeFile(t, dir, "a.so", []byte("a")), writeFile(t, dir, "b.so", []byte("b"))
	mustSignctl(t, d, "sign", a, "--key", "release")
	mustSignctl(t, d, "sign", b, "--key", "release")
	mustSignctl(t, d, "verify", a, "--org", "acme")
	writeFile(t, dir, "a.so", []byte("tampered"))
	signctl(t, d, "verify", a, "--org", "acme")

	_, text := httpGet(t, "http://"+addr+"/metrics")
	for _, want := range []string{
		`signerd_signatures_total{algorithm="ed25519",format="cloacina",key="release"} 2`,
		`signerd_grpc_calls_total{code="OK",method="/signer.v1.SignerService/Sign"} 2`,
		`signerd_verifications_total{outcome="VERIFIED"} 1`,
		`signerd_verifications_total{outcome="PACKAGE_TAMPERED"} 1`,
		`signerd_hsm_sessions_in_use 0`,
		`signerd_grpc_call_duration_seconds_bucket{method="/signer.v1.SignerService/Sign"`,
		`signerd_db_commits_total`,
		// Two signatures, far below a merge: both indexed in memory.
		`signerd_signature_index_pending 2`,
		`signerd_signature_index_merges_total 0`,
		// The journal's gauges and counters (bbolt).
		`signerd_journal_unapplied `,
		`signerd_journal_group_commits_total `,
		`signerd_journal_applies_total `,
		`signerd_audit_head_seq`,
		`process_open_fds`,
	} {
		if !strings.Contains(text, want) {
			t.Errorf("metrics lack %q", want)
		}
	}
	if t.Failed() {
		t.Logf("metrics:\n%s", text)
	}
	// The profiler is off unless asked for.
	if code, _ := httpGet(t, "http://"+addr+"/debug/pprof/"); code != http.StatusNotFound {
		t.Errorf("/debug/pprof/ without --metrics-pprof: HTTP %d, want 404", code)
	}
}

// TestMetricsPprof: with --metrics-pprof the metrics address also serves
// Go's profiler, and says so in the log.
func TestMetricsPprof(t *testing.T) {
	d := startDaemon(t, "--metrics-listen", "127.0.0.1:0", "--metrics-pprof")
	addr := metricsAddr(t, d)
	if code, body := httpGet(t, "http://"+addr+"/debug/pprof/goroutine?debug=1"); code != http.StatusOK || !strings.Contains(body, "goroutine profile:") {
		t.Fatalf("goroutine profile: HTTP %d\n%.500s", code, body)
	}
	if code, _ := httpGet(t, "http://"+addr+"/metrics"); code != http.StatusOK {
		t.Errorf("/metrics beside the profiler: HTTP %d", code)
	}
	d.waitForLog(t, "serving Go's profiler")
}

// metricsAddr is the address d logged for its metrics listener.
func metricsAddr(t *testing.T, d *daemon) string {
	t.Helper()
	m := regexp.MustCompile(`serving Prometheus metrics" addr=(\S+)`).FindStringSubmatch(d.logs.String())
	if m == nil {
		t.Fatalf("no metrics address in the log:\n%s", d.logs.String())
	}
	return m[1]
}

// httpGet fetches url and returns the status code and the body.
func httpGet(t *testing.T, url string) (int, string) {
	t.Helper()
	client := http.Client{Timeout: 10 * time.Second}
	resp, err := client.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(body)
}
