package softhsmtest

import (
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// noPtrace runs a command as this uid with every capability but
// CAP_SYS_PTRACE: the kernel then lets it read another process's
// /proc/PID/exe only if that process is dumpable (and holds no capability
// the reader lacks, hence the daemon runs without CAP_SYS_PTRACE too).
var noPtrace = []string{"setpriv", "--bounding-set=-sys_ptrace", "--inh-caps=-sys_ptrace", "--"}

// TestProcessHygiene: signerd holds the PIN and HSM sessions in memory, so
// it is not dumpable — a process of its own uid (without CAP_SYS_PTRACE)
// cannot look into it — and it writes no core file (RLIMIT_CORE 0, hard
// limit included). The same look into an ordinary process of the same uid
// and capabilities succeeds, so the check can tell the two apart.
func TestProcessHygiene(t *testing.T) {
	needRoot(t, "signerd is not dumpable by its own uid without CAP_SYS_PTRACE and writes no core file")
	if _, err := exec.LookPath("setpriv"); err != nil {
		t.Fatalf("setpriv not found (%v): `make deps` installs it (util-linux)", err)
	}
	d := startDaemonWrapped(t, noPtrace)
	pid := d.cmd.Process.Pid

	peek := func(pid int) (string, error) {
		out, err := exec.Command(noPtrace[0], append(noPtrace[1:], "readlink", fmt.Sprintf("/proc/%d/exe", pid))...).CombinedOutput()
		return strings.TrimSpace(string(out)), err
	}
	sibling := exec.Command(noPtrace[0], append(noPtrace[1:], "sleep", "60")...)
	if err := sibling.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = sibling.Process.Kill(); _ = sibling.Wait() }()
	// Until setpriv has exec'd sleep: before, it still holds every
	// capability, and no reader without CAP_SYS_PTRACE may look.
	exe := fmt.Sprintf("/proc/%d/exe", sibling.Process.Pid)
	for i := 0; i < 500; i++ {
		if target, _ := os.Readlink(exe); strings.HasSuffix(target, "sleep") {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if out, err := peek(sibling.Process.Pid); err != nil || !strings.HasSuffix(out, "sleep") {
		t.Fatalf("control: reading an ordinary process's /proc/PID/exe: %v %q; the check cannot work here", err, out)
	}
	if out, err := peek(pid); err == nil {
		t.Errorf("a process of signerd's uid read its /proc/%d/exe (%q): signerd is dumpable", pid, out)
	}

	limits, err := os.ReadFile(fmt.Sprintf("/proc/%d/limits", pid))
	if err != nil {
		t.Fatal(err)
	}
	var core []string
	for _, l := range strings.Split(string(limits), "\n") {
		if strings.HasPrefix(l, "Max core file size") {
			core = strings.Fields(strings.TrimPrefix(l, "Max core file size"))
		}
	}
	if len(core) < 2 || core[0] != "0" || core[1] != "0" {
		t.Errorf("signerd's core file size limit (soft, hard) = %v, want 0 0\n%s", core, limits)
	}
	// Still a working daemon.
	mustSignctl(t, d, "key", "create", "release")
}
