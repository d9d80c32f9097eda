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
	addr := regexp.MustCompile(`serving Prometheus metrics" addr=(\S+)`).FindStringSubmatch(d.logs.String())
	if addr == nil {
		t.Fatalf("no metrics address in the log:\n%s", d.logs.String())
	}
	dir := t.TempDir()
	mustSignctl(t, d, "key", "create", "release")
	mustSignctl(t, d, "trust", "add", "--org", "acme", "--key", "release")
	a, b := writeFile(t, dir, "a.so", []byte("a")), writeFile(t, dir, "b.so", []byte("b"))
	mustSignctl(t, d, "sign", a, "--key", "release")
	mustSignctl(t, d, "sign", b, "--key", "release")
	mustSignctl(t, d, "verify", a, "--org", "acme")
	writeFile(t, dir, "a.so", []byte("tampered"))
	signctl(t, d, "verify", a, "--org", "acme")

	client := http.Client{Timeout: 5 * time.Second}
	resp, err := client.Get("http://" + addr[1] + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	text := string(body)
	for _, want := range []string{
		`signerd_signatures_total{algorithm="ed25519",format="cloacina",key="release"} 2`,
		`signerd_grpc_calls_total{code="OK",method="/signer.v1.SignerService/Sign"} 2`,
		`signerd_verifications_total{outcome="VERIFIED"} 1`,
		`signerd_verifications_total{outcome="PACKAGE_TAMPERED"} 1`,
		`signerd_hsm_sessions_in_use 0`,
		`signerd_grpc_call_duration_seconds_bucket{method="/signer.v1.SignerService/Sign"`,
		`signerd_db_commits_total`,
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
	if code := httpStatus(t, "http://"+addr[1]+"/debug/pprof/"); code != http.StatusNotFound {
		t.Errorf("/debug/pprof/ without --metrics-pprof: HTTP %d, want 404", code)
	}
}

// TestMetricsPprof: with --metrics-pprof the metrics address also serves
// Go's profiler, and says so in the log.
func TestMetricsPprof(t *testing.T) {
	d := startDaemon(t, "--metrics-listen", "127.0.0.1:0", "--metrics-pprof")
	addr := regexp.MustCompile(`serving Prometheus metrics" addr=(\S+)`).FindStringSubmatch(d.logs.String())
	if addr == nil {
		t.Fatalf("no metrics address in the log:\n%s", d.logs.String())
	}
	client := http.Client{Timeout: 10 * time.Second}
	resp, err := client.Get("http://" + addr[1] + "/debug/pprof/goroutine?debug=1")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), "goroutine profile:") {
		t.Fatalf("goroutine profile: HTTP %d\n%.500s", resp.StatusCode, body)
	}
	if code := httpStatus(t, "http://"+addr[1]+"/metrics"); code != http.StatusOK {
		t.Errorf("/metrics beside the profiler: HTTP %d", code)
	}
	if !strings.Contains(d.logs.String(), "serving Go's profiler") {
		t.Errorf("the log does not say the profiler is served:\n%s", d.logs.String())
	}
}

func httpStatus(t *testing.T, url string) int {
	t.Helper()
	client := http.Client{Timeout: 10 * time.Second}
	resp, err := client.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}
