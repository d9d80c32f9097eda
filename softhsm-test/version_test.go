package softhsmtest

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestVersion: `make build` stamps what the binaries cannot read from
// their build info (the build time always; version and revision without
// VCS stamping); `signerd --version`, `signctl version` (client and
// server, over GetServerInfo, which any caller that may verify can make)
// and the signerd_build_info gauge say the same thing.
func TestVersion(t *testing.T) {
	t.Run("make build stamps", func(t *testing.T) {
		bin := t.TempDir()
		cmd := exec.Command("make", "-C", "..", "build", "BIN="+bin)
		cmd.Env = append(os.Environ(), "SOURCE_DATE_EPOCH=1700000000")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("make build: %v\n%s", err, out)
		}
		wantRev := "unknown"
		if out, err := exec.Command("git", "rev-parse", "HEAD").Output(); err == nil {
			wantRev = strings.TrimSpace(string(out))
		}
		line := regexp.MustCompile(`^signerd (\S+), revision (\S+)( \(modified\))?, built 2023-11-14T22:13:20Z, go\S+\n$`)
		out, err := exec.Command(filepath.Join(bin, "signerd"), "--version").Output()
		if err != nil {
			t.Fatal(err)
		}
		if m := line.FindStringSubmatch(string(out)); m == nil || m[2] != wantRev {
			t.Fatalf("signerd --version: %q, want revision %s built 2023-11-14T22:13:20Z", out, wantRev)
		}
		out, err = exec.Command(filepath.Join(bin, "signctl"), "version", "--socket", filepath.Join(bin, "none.sock")).Output()
		if err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(string(out), "client: signctl ") || !strings.Contains(string(out), ", revision "+wantRev) ||
			!strings.Contains(string(out), "built 2023-11-14T22:13:20Z") || !strings.Contains(string(out), "\nserver: cannot reach signerd at ") {
			t.Fatalf("signctl version without a daemon:\n%s", out)
		}
	})

	t.Run("client, server and metrics agree", func(t *testing.T) {
		d := startDaemon(t, "--metrics-listen", "127.0.0.1:0", "--socket-mode", "0666")
		own, err := exec.Command(bins.signerd, "--version").Output()
		if err != nil {
			t.Fatal(err)
		}
		r := mustSignctl(t, d, "version")
		lines := strings.Split(r.stdout, "\n")
		if len(lines) != 3 || !strings.HasPrefix(lines[0], "client: signctl ") || lines[1] != "server: "+strings.TrimSpace(string(own)) {
			t.Fatalf("signctl version:\n%s\nsignerd --version: %s", r.stdout, own)
		}
		j := mustSignctl(t, d, "version", "-o", "json").json(t)
		server, ok := j["server"].(map[string]any)
		if !ok || server["module"] != "github.com/signerd/signerd" || server["version"] == "" || server["go_version"] == "" {
			t.Fatalf("signctl version -o json: %v", j)
		}
		_, body := httpGet(t, "http://"+metricsAddr(t, d)+"/metrics")
		gauge := regexp.MustCompile(`(?m)^signerd_build_info\{(.*)\} 1$`).FindStringSubmatch(body)
		if gauge == nil {
			t.Fatalf("no signerd_build_info gauge:\n%s", body)
		}
		for _, label := range []string{`version="` + server["version"].(string) + `"`, `revision="` + server["revision"].(string) + `"`, `goversion="` + server["go_version"].(string) + `"`} {
			if !strings.Contains(gauge[1], label) {
				t.Errorf("signerd_build_info{%s} lacks %s", gauge[1], label)
			}
		}

		// Any caller that may verify may ask: uid nobody, default policy.
		needRoot(t, "any caller that may verify (uid nobody, default policy) may ask the daemon's version")
		traversable(t, d.socket)
		expectExit(t, signctlAsNobody(t, d, "version"), 0, "nobody asks the server's version")
		if n := signctlAsNobody(t, d, "version"); !strings.Contains(n.stdout, "\nserver: signerd ") {
			t.Errorf("nobody was not told the server's version:\n%s%s", n.stdout, n.stderr)
		}
	})
}
