package daemon

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/signerd/signerd/internal/store"
)

// readiness combines what the health service reports: signerd serves
// only while the HSM answers and the store can record. Each source
// reports its own state; sinks hear the combination, once per change.
type readiness struct {
	mu       sync.Mutex
	hsm      bool
	store    bool
	stopping bool
	reported *bool
	sinks    []func(serving bool)
}

// newReadiness starts with the store up (a store is checked when it is
// opened) and the HSM down until the key store reports.
func newReadiness() *readiness { return &readiness{store: true} }

func (r *readiness) setHSM(up bool)   { r.set(func() { r.hsm = up }) }
func (r *readiness) setStore(up bool) { r.set(func() { r.store = up }) }

// shutdown reports NOT_SERVING for good: the daemon is draining, and an
// HSM or store that recovers meanwhile must not bring callers back.
func (r *readiness) shutdown() { r.set(func() { r.stopping = true }) }

// notify adds a sink and tells it the current state.
func (r *readiness) notify(fn func(serving bool)) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.sinks = append(r.sinks, fn)
	fn(r.hsm && r.store)
}

func (r *readiness) set(change func()) {
	r.mu.Lock()
	defer r.mu.Unlock()
	change()
	now := r.hsm && r.store && !r.stopping
	if r.reported != nil && *r.reported == now {
		return
	}
	r.reported = &now
	for _, fn := range r.sinks {
		fn(now)
	}
}

// Store health polling: how often, and how long one check may take. A
// lost etcd quorum turns health NOT_SERVING within interval + timeout
// (3 s), and SERVING again within one interval of its return.
const (
	storeHealthInterval = time.Second
	storeHealthTimeout  = 2 * time.Second
)

// watchStoreHealth polls st, if it can become unavailable, until ctx
// ends, and reports each change to report. It returns a channel closed
// when it has stopped.
func watchStoreHealth(ctx context.Context, st store.Store, log *slog.Logger, report func(up bool)) <-chan struct{} {
	done := make(chan struct{})
	hc, ok := st.(store.HealthChecker)
	if !ok {
		close(done)
		return done
	}
	go func() {
		defer close(done)
		up := true
		t := time.NewTicker(storeHealthInterval)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
			cctx, cancel := context.WithTimeout(ctx, storeHealthTimeout)
			err := hc.CheckHealth(cctx)
			cancel()
			if ctx.Err() != nil {
				return
			}
			switch {
			case err != nil && up:
				log.Error("store unavailable: health NOT_SERVING until it answers", "err", err)
			case err == nil && !up:
				log.Info("store available again: health SERVING")
			default:
				continue
			}
			up = err == nil
			report(up)
		}
	}()
	return done
}
