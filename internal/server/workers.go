package server

import "sync"

// itemWorkers runs SignBatch items on long-lived goroutines, as gRPC's
// stream workers run calls (streamWorkers): an item blocks in the
// HSM and in the group commit as a Sign call does, and on a fresh
// goroutine it would grow the stack twice on the way. When every worker is
// busy an item gets a goroutine of its own, as before, so the workers
// bound nothing; batchWindow and the stream limits do.
type itemWorkers struct{ work chan func() }

// batchItems is the process's one pool: servers come and go in tests, and
// an item may still be running after its server stopped.
var batchItems = sync.OnceValue(func() *itemWorkers {
	w := &itemWorkers{work: make(chan func())}
	for range streamWorkers {
		go func() {
			for f := range w.work {
				f()
			}
		}()
	}
	return w
})

// run runs f on an idle worker, or on a new goroutine if none is idle.
func (w *itemWorkers) run(f func()) {
	select {
	case w.work <- f:
	default:
		go f()
	}
}
