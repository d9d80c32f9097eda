package daemon

import (
	"fmt"

	"golang.org/x/sys/unix"
)

// hardenProcess keeps what signerd holds in memory — the token PIN, the
// logged-in HSM sessions — inside the process: it is made non-dumpable
// (other processes of its uid without CAP_SYS_PTRACE can neither ptrace it
// nor read /proc/PID/mem, and /proc/PID/ becomes root's) and it may write
// no core file, whatever the environment's limits. It runs before the PIN
// is read; a failure stops start-up rather than run exposed.
func hardenProcess() error {
	if err := unix.Prctl(unix.PR_SET_DUMPABLE, 0, 0, 0, 0); err != nil {
		return fmt.Errorf("prctl(PR_SET_DUMPABLE, 0): %w", err)
	}
	// Hard limit too: nothing later in the process can raise it again.
	if err := unix.Setrlimit(unix.RLIMIT_CORE, &unix.Rlimit{Cur: 0, Max: 0}); err != nil {
		return fmt.Errorf("setrlimit(RLIMIT_CORE, 0): %w", err)
	}
	return nil
}
