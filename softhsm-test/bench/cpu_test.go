package bench

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// clockTick is the unit of utime and stime in /proc/PID/stat: USER_HZ,
// 100 on every Linux architecture Go supports.
const clockTick = 10 * time.Millisecond

// procCPU is the CPU time (user + system, all threads) a process has used.
func procCPU(pid int) (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// The command name (field 2) may hold spaces; fields after it are
	// counted from its closing parenthesis. utime and stime are fields 14
	// and 15.
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, fmt.Errorf("/proc/%d/stat: %q", pid, s)
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 13 {
		return 0, fmt.Errorf("/proc/%d/stat: %q", pid, s)
	}
	utime, err1 := strconv.ParseInt(f[11], 10, 64)
	stime, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("/proc/%d/stat: %q", pid, s)
	}
	return time.Duration(utime+stime) * clockTick, nil
}

// selfCPU is this process's CPU time (user + system), to the microsecond.
func selfCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// cpuMeter measures the CPU that the daemon and this process (the clients)
// spend during a phase.
type cpuMeter struct {
	pid            int
	daemon0, self0 time.Duration
}

func startCPU(pid int) (cpuMeter, error) {
	d, err := procCPU(pid)
	return cpuMeter{pid: pid, daemon0: d, self0: selfCPU()}, err
}

// perOp returns the microseconds of CPU per operation of the daemon and
// of the clients since startCPU.
func (m cpuMeter) perOp(ops int64) (daemonUS, clientUS float64, err error) {
	d, err := procCPU(m.pid)
	if err != nil || ops <= 0 {
		return 0, 0, err
	}
	self := selfCPU()
	return float64(d-m.daemon0) / 1e3 / float64(ops), float64(self-m.self0) / 1e3 / float64(ops), nil
}
