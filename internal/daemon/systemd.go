package daemon

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	sd "github.com/coreos/go-systemd/v22/daemon"
)

// notifier tells systemd (NOTIFY_SOCKET, Type=notify) where signerd is in
// its life. Without NOTIFY_SOCKET every call does nothing.
type notifier struct {
	log *slog.Logger
}

func (n notifier) send(state string) {
	if _, err := sd.SdNotify(false, state); err != nil {
		n.log.Warn("systemd notification failed", "state", state, "err", err)
	}
}

// ready: the token is open, the store checked, the listeners serving.
func (n notifier) ready(status string) { n.send("READY=1\nSTATUS=" + status) }

// reloading precedes a reload; MONOTONIC_USEC is what systemd ≥ 253 wants
// with RELOADING=1 (Type=notify-reload), older ones ignore it.
func (n notifier) reloading() {
	n.send("RELOADING=1\n" + sd.SdNotifyMonotonicUsec() + "\nSTATUS=reloading")
}

// stopAfterDrain is what stopping asks systemd to allow beyond the drain:
// the final audit checkpoint, closing the store and logging out of the
// HSM (a network HSM's round trips included).
const stopAfterDrain = 15 * time.Second

// stopping: draining in-flight calls (for up to drain) before exit.
// EXTEND_TIMEOUT_USEC (systemd ≥ 236) makes systemd wait for the drain
// and what follows it even when --shutdown-timeout is longer than the
// unit's TimeoutStopSec, instead of killing signerd before its final
// checkpoint; it never shortens the unit's timeout.
func (n notifier) stopping(drain time.Duration) {
	n.send(fmt.Sprintf("STOPPING=1\nEXTEND_TIMEOUT_USEC=%d\nSTATUS=draining in-flight calls", (drain + stopAfterDrain).Microseconds()))
}

// watchdog pets systemd's watchdog (WatchdogSec=) at half its interval,
// but only while the HSM answers (serving, as the key store's supervision
// sees it): a daemon whose token is gone stops petting, and systemd
// restarts it after WatchdogSec unless the token came back first. While
// withheld, each tick sends a STATUS saying why (systemctl status shows
// it). It returns when ctx ends; without WATCHDOG_USEC it returns at once.
func (n notifier) watchdog(ctx context.Context, serving func() bool) {
	interval, err := sd.SdWatchdogEnabled(false)
	if err != nil {
		n.log.Warn("systemd watchdog settings unreadable; not petting it", "err", err)
		return
	}
	if interval <= 0 {
		return
	}
	n.log.Info("systemd watchdog", "interval", interval)
	t := time.NewTicker(interval / 2)
	defer t.Stop()
	down := false
	for {
		ok := serving()
		switch {
		case ok && down:
			n.send("WATCHDOG=1\nSTATUS=serving (HSM token back)")
		case ok:
			n.send("WATCHDOG=1")
		default:
			n.send("STATUS=HSM token unavailable: watchdog withheld")
		}
		down = !ok
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
