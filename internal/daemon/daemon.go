// Package daemon is signerd's composition root: configuration, then the
// store, the HSM key store, the service and the gRPC server, wired by hand.
// It is the only package that imports all of them.
package daemon

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/signerd/signerd/internal/server"
	"github.com/signerd/signerd/internal/service"
	"github.com/signerd/signerd/internal/version"
)

// NewRootCommand builds the signerd command.
func NewRootCommand(stdout, stderr io.Writer, getenv func(string) string) *cobra.Command {
	root := &cobra.Command{
		Use:   "signerd [flags]",
		Short: "signerd: HSM-backed signing service for software supply chains",
		Long: `signerd signs artifacts with keys held in an HSM (PKCS#11), records every
signature and administrative act in bbolt (or, for several replicas, in etcd:
--store etcd:URL,…), and answers loaders' Verify calls on a local Unix socket.
It serves until SIGINT/SIGTERM, then drains in-flight calls.

The PIN comes from --pin-file or SIGNERD_PIN, never from a flag value.
Precedence: flags > environment > config file > defaults.`,
		SilenceUsage:  true,
		SilenceErrors: true,
		Args:          cobra.NoArgs,
		// --version: module version, VCS revision, build time (internal/version).
		Version: version.Get().String(),
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := Load(cmd.Flags(), getenv)
			if err != nil {
				return err
			}
			return Run(cmd.Context(), cfg, stderr)
		},
	}
	root.SetOut(stdout)
	root.SetErr(stderr)
	root.SetVersionTemplate("signerd {{.Version}}\n")
	registerFlags(root.Flags())
	root.AddCommand(newConfigCommand(stdout, getenv), newInitTokenCommand(stdout, getenv), newStoreCommand(stdout, getenv))
	return root
}

func newConfigCommand(stdout io.Writer, getenv func(string) string) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "config [flags]",
		Short: "Print the effective configuration (PIN redacted)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := Load(cmd.Flags(), getenv)
			if err != nil {
				return err
			}
			_, err = io.WriteString(stdout, cfg.Redacted())
			return err
		},
	}
	registerFlags(cmd.Flags())
	return cmd
}

// newLogger returns the daemon's logger and its level, which a reload
// changes.
func newLogger(cfg Config, w io.Writer) (*slog.Logger, *slog.LevelVar, error) {
	level, err := parseLogLevel(cfg.LogLevel)
	if err != nil {
		return nil, nil, err
	}
	lv := &slog.LevelVar{}
	lv.Set(level)
	h, err := logHandler(cfg.LogFormat, w, &slog.HandlerOptions{Level: lv})
	if err != nil {
		return nil, nil, err
	}
	return slog.New(h), lv, nil
}

// parseLogLevel reads log-level: where the setting is read, at start and
// at a reload.
func parseLogLevel(v string) (slog.Level, error) {
	var level slog.Level
	if err := level.UnmarshalText([]byte(v)); err != nil {
		return 0, fmt.Errorf("log-level %q: want debug, info, warn or error", v)
	}
	return level, nil
}

// logHandler is log-format's handler writing to w.
func logHandler(format string, w io.Writer, opts *slog.HandlerOptions) (slog.Handler, error) {
	switch strings.ToLower(format) {
	case "text":
		return slog.NewTextHandler(w, opts), nil
	case "json":
		return slog.NewJSONHandler(w, opts), nil
	}
	return nil, fmt.Errorf("log-format %q: want text or json", format)
}

// Run starts signerd and serves until ctx ends, then drains and shuts down
// in order: stop accepting, drain calls, close the HSM (logout), close the
// database.
func Run(ctx context.Context, cfg Config, logOut io.Writer) error {
	// SIGHUP's default action kills the process: take it over before
	// anything else, so a reload sent during start-up waits for serving.
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	log, level, err := newLogger(cfg, logOut)
	if err != nil {
		return err
	}
	if err := hardenProcess(); err != nil {
		return err
	}
	if n := server.TuneScheduler(); n > 0 {
		log.Debug("Go scheduler: twice the default Ps (GOMAXPROCS unset)", "gomaxprocs", n)
	}
	fileLimit, err := raiseFileLimit(cfg)
	if err != nil {
		return err
	}
	spec, err := parseStore(cfg.Store, cfg)
	if err != nil {
		return err
	}
	pin, err := cfg.PIN()
	if err != nil {
		return err
	}
	if _, err := os.Stat(cfg.PKCS11Module); err != nil {
		return fmt.Errorf("PKCS#11 module %s: %w (install SoftHSM2 with `apt-get install softhsm2`, or set --pkcs11-module)", cfg.PKCS11Module, err)
	}
	if err := checkListen(cfg); err != nil {
		return err
	}
	policy, policyRules, err := loadAuthorizer(cfg)
	if err != nil {
		return err
	}
	authz := server.NewSwitchAuthorizer(policy)
	fromSystemd, err := passedListeners(cfg)
	if err != nil {
		return err
	}
	defer fromSystemd.close() // no-op once served: Stop closes them first

	// Everything the configuration names is taken before the store and
	// the HSM are touched: a socket in use, a port taken or unreadable
	// TLS material must not leave behind a new database, its journal and
	// new keys in the token. Callers that connect meanwhile wait in the
	// kernel's queue until serving starts, as with systemd's sockets.
	l := fromSystemd.unix
	if l == nil {
		if l, err = server.ListenUnix(cfg.Socket, cfg.SocketMode); err != nil {
			return err
		}
	}
	listeners := []net.Listener{l}
	tcp, plaintext, tlsSrc, err := listenTCP(cfg, fromSystemd.tcp)
	if err != nil {
		l.Close()
		return err
	}
	if tcp != nil {
		listeners = append(listeners, tcp)
	}
	metricsL, err := listenMetrics(cfg)
	if err != nil {
		closeAll(listeners)
		return err
	}
	// Until they are served (srv.Stop closes them then), a failed start
	// closes them, which removes the Unix socket it made.
	served := false
	defer func() {
		if !served {
			closeAll(listeners)
			if metricsL != nil {
				metricsL.Close()
			}
		}
	}()

	// A database this start creates is removed again if the HSM then
	// refuses (a wrong label or PIN): the next start must not find an
	// empty, migrated file that belongs to no token. The store says
	// whether its open made the file (decided under its lock).
	removeDB := false
	st, err := openStore(ctx, spec, cfg, log)
	if err != nil {
		return fmt.Errorf("open store %s: %w", spec, err)
	}
	defer func() {
		if r, ok := st.(interface{ RemoveOnClose() }); ok && removeDB {
			// Removed by Close while it holds the file's lock (the
			// journal first: a journal left without its database would
			// stop the next start).
			r.RemoveOnClose()
		}
		if err := st.Close(); err != nil {
			log.Error("close database", "err", err)
		}
	}()

	// The first open's errors (module, label, PIN) stop start-up; faults
	// after it are recovered without a restart (keystore/supervised).
	ks, err := openHSM(ctx, cfg, pin, st, log)
	if err != nil {
		if c, ok := st.(interface{ Created() bool }); ok {
			removeDB = c.Created()
		}
		return pinRefused(fmt.Errorf("open HSM: %w", err))
	}
	defer func() {
		if err := ks.Close(); err != nil {
			log.Error("close HSM", "err", err)
		}
	}()

	mx, err := startMetrics(ctx, cfg, log, st, metricsL)
	if err != nil {
		return err
	}
	refusalsInFull := cfg.AuditRefusalsPerWindow
	if refusalsInFull == 0 {
		refusalsInFull = -1 // count them all; the service's 0 is its default
	}
	svc := service.New(st, ks, service.Options{Logger: log, HSMConcurrency: cfg.MaxSessions, Observer: mx, LogOrigin: cfg.LogOrigin,
		RefusalWindow: cfg.AuditRefusalWindow, RefusalFullRecords: refusalsInFull})
	// Other replicas' changes (etcd) drop the caches as they happen; the
	// watch stops (deferred) before the store closes.
	followCtx, stopFollowing := context.WithCancel(context.Background())
	followDone := svc.FollowStoreChanges(followCtx)
	defer func() { stopFollowing(); <-followDone }()
	// The audit key signs checkpoints every interval and at shutdown; the
	// checkpointer stops (deferred, so on every return) before the HSM
	// closes.
	auditKey, err := svc.EnsureAuditKey(ctx)
	if err != nil {
		return err
	}
	if jl, ok := st.(interface {
		JournalLoss() string
		JournalLossRecorded() error
	}); ok && jl.JournalLoss() != "" {
		if err := svc.RecordJournalLoss(ctx, jl.JournalLoss()); err != nil {
			return err
		}
		if err := jl.JournalLossRecorded(); err != nil {
			return err
		}
	}
	log.Info("audit checkpoints", "audit_key", auditKey.Versions[len(auditKey.Versions)-1].Fingerprint, "interval", cfg.AuditCheckpointInterval)
	if vkey, err := svc.LogVerifierKey(ctx); err == nil {
		log.Info("transparency log", "origin", cfg.LogOrigin, "verifier_key", vkey)
	}
	// The trust it enforces must be the trust its log vouches for: a state
	// written into the database behind its back stops start-up.
	if _, err := svc.VerifyStateAtStart(ctx, cfg.AcceptState); err != nil {
		return err
	}
	if err := svc.RecordStart(ctx, describeAuthorizer(policy, cfg.Policy)+"; signerd "+version.Get().String()); err != nil {
		return err
	}
	cpCtx, stopCheckpoints := context.WithCancel(context.Background())
	cpDone := make(chan struct{})
	go func() { defer close(cpDone); svc.RunCheckpoints(cpCtx, cfg.AuditCheckpointInterval) }()
	defer func() { stopCheckpoints(); <-cpDone }()
	// Aggregate refusal records are written as their windows end, and the
	// last one after the last call (below), before the final checkpoint.
	refusalCtx, stopRefusals := context.WithCancel(context.Background())
	refusalDone := make(chan struct{})
	go func() { defer close(refusalDone); svc.RunRefusalAggregates(refusalCtx) }()
	defer func() { stopRefusals(); <-refusalDone }()
	srv := server.New(svc, withLimits(server.Options{Logger: log, Denials: svc, Authorizer: authz, Calls: mx, ConnectionRefused: mx.ConnectionRefused, Reflection: cfg.Reflection}, cfg))
	// SERVING now; NOT_SERVING while the HSM is down or the store (etcd)
	// has lost its quorum. The store watch stops (deferred) before the
	// store closes.
	ready := newReadiness()
	ready.notify(srv.SetServing)
	ks.NotifyHealth(ready.setHSM)
	healthCtx, stopHealth := context.WithCancel(context.Background())
	healthDone := watchStoreHealth(healthCtx, st, log, ready.setStore)
	defer func() { stopHealth(); <-healthDone }()
	ks.NotifyHealth(hsmHealthMetrics(mx))
	if fromSystemd.unix != nil {
		log.Info("the Unix socket came from systemd: its mode and owner are the socket unit's (SocketMode=, SocketGroup=), not --socket-mode")
	}
	if policyRules > 0 {
		log.Info("authorization by policy file", "policy", cfg.Policy, "rules", policyRules, "sha256", policy.(*server.Policy).Digest())
	} else {
		log.Info("authorization by the default rule (no --policy): root and the daemon's uid are admins; other callers may only verify")
	}
	if cfg.MaxConnectionsPerPeer >= cfg.MaxConnections {
		log.Warn("--max-connections-per-peer is not below --max-connections: one uid or host can hold every connection of a listener",
			"max_connections_per_peer", cfg.MaxConnectionsPerPeer, "max_connections", cfg.MaxConnections)
	}
	if oneConn := int64(cfg.MaxConcurrentStreams+1) * int64(cfg.MaxRecvMsgSize); cfg.MaxInflightBytesPerPeer > 0 && int64(cfg.MaxInflightBytesPerPeer) < oneConn {
		log.Warn("--max-inflight-bytes-per-peer is below what one connection's streams reserve (--max-concurrent-streams + 1 times --max-recv-msg-size): a well-behaved client with many small calls at once will see RESOURCE_EXHAUSTED",
			"max_inflight_bytes_per_peer", cfg.MaxInflightBytesPerPeer, "one_connection", oneConn)
	}
	if tcp != nil {
		log.Info("signerd serving TCP", "tcp_addr", tcp.Addr().String(), "mutual_tls", !plaintext)
		if plaintext {
			log.Warn("plaintext TCP on loopback (--insecure-loopback): every local process can connect as " + server.LoopbackID)
		}
	}
	// The summary line comes last: a reader of the log (an operator, a
	// test) that sees it has seen every start-up line before it.
	// A passed socket's mode is the socket unit's, not --socket-mode.
	socketMode := fmt.Sprintf("%04o", cfg.SocketMode)
	if fromSystemd.unix != nil {
		socketMode = "unknown"
		if fi, err := os.Stat(cfg.Socket); err == nil {
			socketMode = fmt.Sprintf("%04o", fi.Mode().Perm())
		}
	}
	log.Info("signerd serving", "socket", cfg.Socket, "socket_mode", socketMode,
		"store", spec.String(), "token", cfg.TokenLabel, "module", cfg.PKCS11Module, "pid", os.Getpid(), "file_limit", fileLimit,
		"socket_activated", fromSystemd.unix != nil, "tcp_socket_activated", fromSystemd.tcp != nil)

	// One gRPC server serves every listener; Stop drains them all.
	serveErr := make(chan error, len(listeners))
	served = true
	for _, l := range listeners {
		go func() { serveErr <- srv.Serve(l) }()
	}
	sd := notifier{log: log}
	sd.ready("serving on " + cfg.Socket)
	wdCtx, stopWatchdog := context.WithCancel(context.Background())
	wdDone := make(chan struct{})
	go func() { defer close(wdDone); sd.watchdog(wdCtx, ks.Serving) }()
	defer func() { stopWatchdog(); <-wdDone }()
	rl := &reloader{log: log, level: level, authz: authz, tls: tlsSrc, svc: svc, cfg: cfg}
	for serving := true; serving; {
		select {
		case <-hup:
			sd.reloading()
			_ = rl.reload(ctx) // refused or not, the daemon serves on
			sd.ready("serving on " + cfg.Socket)
		case err := <-serveErr:
			stopCtx, cancel := context.WithTimeout(context.Background(), cfg.ShutdownTimeout)
			srv.Stop(stopCtx) // the other listeners
			cancel()
			for range len(listeners) - 1 {
				<-serveErr
			}
			if err != nil && !errors.Is(err, net.ErrClosed) {
				return fmt.Errorf("serve: %w", err)
			}
			return nil
		case <-ctx.Done():
			serving = false
		}
	}
	sd.stopping(cfg.ShutdownTimeout)
	log.Info("signerd stopping: draining in-flight calls", "timeout", cfg.ShutdownTimeout)
	ready.shutdown()
	drainCtx, cancel := context.WithTimeout(context.Background(), cfg.ShutdownTimeout)
	defer cancel()
	srv.Stop(drainCtx)
	for range listeners {
		<-serveErr
	}
	// No call is in flight now: count the last refusals, then sign the
	// final head before the HSM closes.
	stopRefusals()
	<-refusalDone
	svc.FlushRefusals(context.Background())
	stopCheckpoints()
	<-cpDone
	cpFinal, cancelFinal := context.WithTimeout(context.Background(), 10*time.Second)
	if cp, wrote, err := svc.Checkpoint(cpFinal); err != nil {
		log.Error("final audit checkpoint failed", "err", err)
	} else {
		log.Info("final audit checkpoint", "seq", cp.Seq, "written", wrote)
	}
	cancelFinal()
	log.Info("signerd stopped")
	return nil
}

// exists reports whether anything is at path (an unreadable one counts).
func exists(path string) bool {
	_, err := os.Lstat(path)
	return !errors.Is(err, fs.ErrNotExist)
}

// closeAll closes listeners not yet served.
func closeAll(ls []net.Listener) {
	for _, l := range ls {
		_ = l.Close()
	}
}
