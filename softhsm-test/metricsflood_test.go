package softhsmtest

import (
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestMetricsFlood: a keep-alive flood against the metrics port cannot
// starve the signing listeners of descriptors. signerd runs under a
// 512-descriptor limit with --max-connections 256; each round, 2,000
// connections (soak: 4,000, four rounds) send a keep-alive GET /metrics and
// stay open while `signctl sign` signs three files over the Unix socket.
// The metrics listener holds at most --metrics-max-connections (16) of
// them and the rest wait in the kernel's accept queue. (Before, the
// metrics server accepted them all, the daemon ran out of descriptors —
// accept4: too many open files — and signing stopped.)
func TestMetricsFlood(t *testing.T) {
	rounds, flood := 1, 2000
	if relSoak() {
		rounds, flood = 4, 4000
	}
	// Past the listen backlog the kernel drops SYNs, and dialling would
	// wait on the daemon's idle timeout instead of testing anything.
	if b, err := os.ReadFile("/proc/sys/net/core/somaxconn"); err == nil {
		if n, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil && flood > n-64 {
			flood = n - 64
		}
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
	work := t.TempDir()
	peak := 0
	for round := range rounds {
		conns := make([]net.Conn, 0, flood)
		closeAll := func() {
			for _, c := range conns {
				c.Close()
			}
			conns = nil
		}
		for range flood {
			c, err := net.DialTimeout("tcp", addr, 30*time.Second)
			if err == nil {
				_, err = c.Write([]byte("GET /metrics HTTP/1.1\r\nHost: signerd\r\n\r\n"))
				conns = append(conns, c)
			}
			if err != nil {
				closeAll()
				t.Fatalf("round %d: flood connection %d: %v", round, len(conns), err)
			}
		}
		for i := range 3 {
			name := fmt.Sprintf("lib%d-%d.so", round, i)
			pkg := writeFile(t, work, name, []byte(name))
			r := signctl(t, d, "--timeout", "10s", "sign", pkg, "--key", "release", "--out", filepath.Join(work, name+".sig"))
			if r.code != 0 {
				closeAll()
				expectExit(t, r, 0, fmt.Sprintf("round %d: sign %d over the Unix socket during a %d-connection metrics flood", round, i, flood))
			}
		}
		peak = max(peak, d.proc(t).fds)
		closeAll()
	}
	t.Logf("%d round(s) of %d keep-alive connections to the metrics port: the daemon's descriptors went from %d to at most %d (cap %d); 3 signatures over the socket each round",
		rounds, flood, base, peak, metricsCap)
	if peak > base+metricsCap+8 {
		t.Errorf("the daemon held %d descriptors during the flood (before: %d, metrics cap %d)", peak, base, metricsCap)
	}
	// The metrics port serves again once the kernel's queue of flood
	// connections has drained (each is accepted, its request answered
	// to a closed socket): a bounded number of tries.
	client := http.Client{Timeout: 10 * time.Second}
	var err error
	for try := 0; try < 30; try++ {
		var resp *http.Response
		if resp, err = client.Get("http://" + addr + "/metrics"); err == nil {
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				err = fmt.Errorf("HTTP %d", resp.StatusCode)
			}
			break
		}
	}
	if err != nil {
		t.Errorf("metrics after the flood: %v", err)
	}
}
