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
}
