package etcdstore

import (
	"context"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// watchRetry is how long WatchChanges waits before re-establishing a watch
// that failed; meanwhile it keeps notifying (see WatchChanges).
const watchRetry = 200 * time.Millisecond

// WatchChanges implements store.ChangeNotifier: the returned channel gets a
// value after every change under keys/ and orgs/ and to audit/key, made by
// any replica, and once each time the watch is (re-)established, since
// changes may have been missed before. While the watch is down (no etcd
// member with a leader reachable) it gets a value every watchRetry, so a
// cache that depends on it holds nothing for longer than that. The channel
// is closed when ctx ends or the store is closed.
//
// The watch is made with WithRequireLeader: a member cut off from its
// cluster ends the watch instead of keeping it open and silent.
func (s *Store) WatchChanges(ctx context.Context) <-chan struct{} {
	out := make(chan struct{}, 1)
	notify := func() {
		select {
		case out <- struct{}{}:
		default:
		}
	}
	ctx, cancel := context.WithCancel(ctx)
	go func() {
		select {
		case <-s.stop:
			cancel()
		case <-ctx.Done():
		}
	}()
	go func() {
		defer close(out)
		defer cancel()
		for ctx.Err() == nil {
			s.watchOnce(ctx, notify)
			if ctx.Err() != nil {
				return
			}
			notify()
			t := time.NewTimer(watchRetry)
			select {
			case <-ctx.Done():
				t.Stop()
				return
			case <-t.C:
			}
		}
	}()
	return out
}

// Liveness of the watch: every watchTick the notifier asks etcd for a
// progress notification on the watch stream; a watch that has said nothing
// (no event, no progress) for watchStall is taken for dead, ended and
// established again. The client library would resume a broken stream on
// its own, silently; meanwhile a cache could serve a revoked key.
const (
	watchTick  = 250 * time.Millisecond
	watchStall = time.Second
)

// watchOnce watches the cached ranges from the current revision until the
// watch ends or stalls, calling notify for every event, once when the
// watch is established, and every watchTick until then. Nothing older is
// replayed, and need not be: the notification at establishment drops the
// caches after the watch started, so whatever changed before is read
// afresh.
func (s *Store) watchOnce(ctx context.Context, notify func()) {
	wctx, cancel := context.WithCancel(clientv3.WithRequireLeader(ctx))
	defer cancel()
	chans := []clientv3.WatchChan{
		s.cli.Watch(wctx, s.l.keysDir(), clientv3.WithPrefix(), clientv3.WithCreatedNotify()),
		s.cli.Watch(wctx, s.l.orgsDir(), clientv3.WithPrefix(), clientv3.WithCreatedNotify()),
		s.cli.Watch(wctx, s.l.auditKey(), clientv3.WithCreatedNotify()),
	}
	type event struct {
		i    int
		resp clientv3.WatchResponse
		ok   bool
	}
	events := make(chan event)
	for i, ch := range chans {
		go func() {
			for {
				resp, ok := <-ch
				select {
				case events <- event{i, resp, ok}:
				case <-wctx.Done():
					return
				}
				if !ok {
					return
				}
			}
		}()
	}
	tick := time.NewTicker(watchTick)
	defer tick.Stop()
	created := 0
	seen := make([]time.Time, len(chans))
	for {
		select {
		case <-wctx.Done():
			return
		case now := <-tick.C:
			if created < len(chans) {
				notify() // not watching yet: cache nothing
				continue
			}
			for _, t := range seen {
				if now.Sub(t) > watchStall {
					s.log.Warn("etcd watch stalled; caches are dropped until it is back", "silent_for", now.Sub(t).Round(time.Millisecond).String())
					return
				}
			}
			_ = s.cli.RequestProgress(wctx)
		case e := <-events:
			if !e.ok || e.resp.Canceled || e.resp.Err() != nil {
				if ctx.Err() == nil {
					s.log.Warn("etcd watch ended; caches are dropped until it is back", "err", e.resp.Err())
				}
				return
			}
			seen[e.i] = time.Now()
			if e.resp.Created {
				if created++; created == len(chans) {
					notify()
				}
			}
			if len(e.resp.Events) > 0 {
				notify()
			}
		}
	}
}
