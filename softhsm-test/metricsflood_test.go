package softhsmtest

import (
	"fmt"
	"net"
	"net/http"
	"path/filepath"
	"testing"
	"time"
)

// TestMetricsFlood: a keep-alive flood against the metrics port cannot
// starve the signing listeners of descriptors. signerd runs under a
// 512-descriptor limit with --max-connections 256; 2,000 connections
// (soak: 8,000) each send a keep-alive GET /metrics and stay open. The
// metrics listener holds at most --metrics-max-connections (16) of them,
// the rest wait in the kernel's accept queue, and `signctl sign` over the
// Unix socket keeps working. (Before, the metrics server accepted them
// all, the daemon ran out of descriptors — accept4: too many open files —
// and signing stopped.)
func TestMetricsFlood(t *testing.T) {
	flood := 2000
	if relSoak() {
		flood = 8000
	}
	const fileLimit, metricsCap = 512, 16
	raiseFileLimit(t, uint64(flood)+1024)
	d := startDaemonWrapped(t, []string{"prlimit", fmt.Sprintf("--nofile=%d:%d", fileLimit, fileLimit), "--"},
		"--log-level", "info", "--metrics-listen", "127.0.0.1:0", "--max-connections", "256")
	addr := metricsAddr(t, d)
	mustSignctl(t, d, "key", "create", "release", "--algorithm", "ed25519")
	if code, _ := httpGet(t, "http://"+addr+"/metrics"); code != http.StatusOK {
		t.Fatalf("metrics before the flood: HTTP %d", code)
	}
	base := d.proc(t).fds

	conns := make([]net.Conn, 0, flood)
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	for range flood {
		c, err := net.DialTimeout("tcp", addr, 30*time.Second)
		if err != nil {
			t.Fatalf("flood connection %d: %v", len(conns), err)
		}
		if _, err := c.Write([]byte("GET /metrics HTTP/1.1\r\nHost: signerd\r\n\r\n")); err != nil {
			t.Fatalf("flood connection %d: %v", len(conns), err)
		}
		conns = append(conns, c)
	}

	work := t.TempDir()
	for i := range 3 {
		pkg := writeFile(t, work, fmt.Sprintf("lib%d.so", i), []byte(fmt.Sprintf("package %d", i)))
		expectExit(t, signctl(t, d, "--timeout", "10s", "sign", pkg, "--key", "release", "--out", filepath.Join(work, fmt.Sprintf("lib%d.sig", i))),
			0, fmt.Sprintf("sign %d over the Unix socket during a %d-connection metrics flood", i, flood))
	}
	held := d.proc(t).fds
	t.Logf("%d keep-alive connections to the metrics port: the daemon's descriptors went from %d to %d (cap %d); 3 signatures over the socket", flood, base, held, metricsCap)
	if held > base+metricsCap+8 {
		t.Errorf("the daemon holds %d descriptors during the flood (before: %d, metrics cap %d)", held, base, metricsCap)
	}
	for _, c := range conns {
		c.Close()
	}
	conns = nil
	if code, _ := httpGet(t, "http://"+addr+"/metrics"); code != http.StatusOK {
		t.Errorf("metrics after the flood: HTTP %d", code)
	}
}
