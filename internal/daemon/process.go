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

// reservedFiles are the descriptors kept for everything but connections:
// the database, the PKCS#11 module's files and sockets, etcd clients,
// logs, listeners, and a margin.
const reservedFiles = 128

// raiseFileLimit raises the soft RLIMIT_NOFILE to the hard limit (the Go
// runtime does so too since 1.19; this makes it explicit and returns the
// result) and checks that every connection signerd may hold fits under it
// with reservedFiles to spare: --max-connections on each gRPC listener,
// plus --metrics-max-connections. A configuration that does not fit stops
// start-up, rather than let one listener's connections run another out of
// descriptors (accept4: too many open files) at the worst moment.
func raiseFileLimit(cfg Config) (uint64, error) {
	var lim unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &lim); err != nil {
		return 0, fmt.Errorf("getrlimit(RLIMIT_NOFILE): %w", err)
	}
	if lim.Cur < lim.Max {
		lim.Cur = lim.Max
		if err := unix.Setrlimit(unix.RLIMIT_NOFILE, &lim); err != nil {
			return 0, fmt.Errorf("raise RLIMIT_NOFILE to %d: %w", lim.Max, err)
		}
	}
	return lim.Cur, checkFileBudget(cfg, lim.Cur)
}

// checkFileBudget is raiseFileLimit's check against limit descriptors.
func checkFileBudget(cfg Config, limit uint64) error {
	listeners := 1
	if cfg.Listen != "" {
		listeners = 2
	}
	conns := uint64(cfg.MaxConnections) * uint64(listeners)
	metrics := uint64(0)
	if cfg.MetricsListen != "" {
		metrics = uint64(cfg.MetricsMaxConnections)
	}
	if need := conns + metrics + reservedFiles; need > limit {
		return fmt.Errorf("the connection limits need %d file descriptors (--max-connections %d × %d listener(s) + --metrics-max-connections %d + %d for the database and HSM), but the limit is %d: lower them or raise the limit (LimitNOFILE= in the unit, ulimit -n)",
			need, cfg.MaxConnections, listeners, metrics, reservedFiles, limit)
	}
	return nil
}
