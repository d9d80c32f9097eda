package server

import (
	"os"
	"runtime"
)

// TuneScheduler gives the Go scheduler twice its default number of Ps
// (the cores, or the container's CPU limit) and returns the number set,
// unless GOMAXPROCS is set in the environment, which is then left alone
// (and 0 returned).
//
// Why: signerd's goroutines spend long stretches outside Go. An HSM call
// is a cgo call of 100–300 µs (as many at once as there are sessions), a
// group commit waits in fdatasync; each keeps its P until the runtime's
// monitor takes it back, and each needs a P again on return. With one P
// per core, the committer back from fdatasync queued for a P behind
// goroutines returning from the HSM while every client waited for that
// commit (goroutine snapshots at 32 Sign clients). Extra Ps let the Go
// side run while threads sit in C; the kernel still schedules the threads
// on the cores. Measured on 2 cores, 32 Sign clients, 20 s windows
// alternated four times: 31,899–35,048 signatures at GOMAXPROCS=2,
// 36,156–38,936 at 4 (+11%); the floor server (bench) moved 2,347–2,663
// → 2,404–2,809 per second (+3%) and applies the same. Setting it stops
// the runtime from following later changes of the container's limit.
func TuneScheduler() int {
	if os.Getenv("GOMAXPROCS") != "" {
		return 0
	}
	n := 2 * runtime.GOMAXPROCS(0)
	runtime.GOMAXPROCS(n)
	return n
}
