package daemon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"

	"github.com/signerd/signerd/internal/server"
	"github.com/signerd/signerd/internal/service"
)

// reloader applies what can change without a restart (SIGHUP, systemctl
// reload): the policy file, the TLS listener's certificate, key and client
// CA, and the log level. The configuration (file, environment, flags) is
// read again, so a changed path in the config file counts too. A reload is
// all or nothing: anything unreadable or invalid refuses it, with a log
// line, and every setting in force stays. Every attempt is audited.
type reloader struct {
	log   *slog.Logger
	level *slog.LevelVar
	authz *server.SwitchAuthorizer
	// tls is the TCP listener's TLS configuration; nil without one (no
	// --listen, or plaintext loopback).
	tls *server.TLSSource
	svc *service.Service
	// cfg is the configuration in force.
	cfg Config
}

// reload makes one attempt and audits it. Its error is the refusal, for
// the caller's notification; it is logged here.
func (r *reloader) reload(ctx context.Context) error {
	detail, err := r.apply()
	outcome := "ok"
	if err != nil {
		outcome, detail = "refused", err.Error()
		r.log.Error("reload refused; the settings in force stay", "err", err)
	} else {
		r.log.Info("reload applied", "detail", detail)
	}
	if aerr := r.svc.RecordReload(ctx, outcome, detail); aerr != nil {
		r.log.Error("reload not audited", "err", aerr)
	}
	return err
}

// apply reads and checks everything first, puts the TLS configuration in
// force last of the checks (it is checked and swapped in one step), and
// only then the rest, so that a refusal changes nothing.
func (r *reloader) apply() (string, error) {
	if r.cfg.reread == nil {
		return "", errors.New("this signerd was not started from a configuration it can read again")
	}
	next, err := r.cfg.reread()
	if err != nil {
		return "", fmt.Errorf("configuration: %w", err)
	}
	level, err := parseLogLevel(next.LogLevel)
	if err != nil {
		return "", err
	}
	authz, _, err := loadAuthorizer(next)
	if err != nil {
		return "", err
	}
	tlsNote := "no TLS listener"
	if r.tls != nil {
		if err := r.tls.Reload(tlsFiles(next)); err != nil {
			return "", err
		}
		tlsNote = "tls-cert " + next.TLSCert
	}
	r.level.Set(level)
	r.authz.Set(authz)
	if fixed := restartOnly(r.cfg, next, r.tls != nil); len(fixed) > 0 {
		r.log.Warn("changed settings that only a restart applies; they are not in force", "settings", strings.Join(fixed, ","))
	}
	r.cfg.LogLevel, r.cfg.Policy = next.LogLevel, next.Policy
	if r.tls != nil {
		r.cfg.TLSCert, r.cfg.TLSKey, r.cfg.ClientCA = next.TLSCert, next.TLSKey, next.ClientCA
	}
	return fmt.Sprintf("%s; %s; log-level %s", describeAuthorizer(authz, next.Policy), tlsNote, level), nil
}

// restartOnly names the settings that differ between old and next other
// than those a reload applies.
func restartOnly(old, next Config, tls bool) []string {
	next.LogLevel, next.Policy = old.LogLevel, old.Policy
	if tls {
		next.TLSCert, next.TLSKey, next.ClientCA = old.TLSCert, old.TLSKey, old.ClientCA
	}
	was := strings.Split(old.Redacted(), "\n")
	var names []string
	for i, line := range strings.Split(next.Redacted(), "\n") {
		if i >= len(was) || line != was[i] {
			k, _, _ := strings.Cut(line, " =")
			names = append(names, k)
		}
	}
	return names
}
