package daemon

import (
	"cmp"
	"context"
	"log/slog"
	"time"

	"github.com/signerd/signerd/internal/keystore"
	"github.com/signerd/signerd/internal/keystore/pkcs11"
	"github.com/signerd/signerd/internal/keystore/supervised"
	"github.com/signerd/signerd/internal/server"
	"github.com/signerd/signerd/internal/store"
)

// openHSM opens the token through the supervisor: the first open's errors
// (a wrong module, label or PIN) are returned as pkcs11.Open reports them;
// after that, a token that becomes unavailable makes calls fail fast with
// HSM_UNAVAILABLE and is opened again in the background (re-initialise,
// log in, find keys again and re-check them), except after a refused PIN.
func openHSM(ctx context.Context, cfg Config, pin string, st store.Store, log *slog.Logger) (*supervised.KeyStore, error) {
	p11 := pkcs11.Config{
		ModulePath:        cfg.PKCS11Module,
		TokenLabel:        cfg.TokenLabel,
		TokenSerial:       cfg.TokenSerial,
		TokenModel:        cfg.TokenModel,
		TokenManufacturer: cfg.TokenManufacturer,
		CheckToken:        pinToken(st, log),
		PIN:               pin,
		MaxSessions:       cfg.MaxSessions,
		PoolWaitTimeout:   10 * time.Second,
		Logger:            log,
	}
	ping := cfg.HSMPingInterval
	if ping == 0 {
		ping = -1 // off: faults are then found by the calls that meet them
	}
	return supervised.Open(ctx, supervised.Options{
		Open: func(ctx context.Context) (keystore.KeyStore, error) {
			return pkcs11.Open(ctx, p11)
		},
		Name:         cmp.Or(cfg.TokenLabel, "serial "+cfg.TokenSerial),
		Logger:       log,
		PingInterval: ping,
	})
}

// withLimits adds the configured client limits to the server options.
func withLimits(o server.Options, cfg Config) server.Options {
	o.MaxRecvMsgSize = cfg.MaxRecvMsgSize
	o.MaxConcurrentStreams = uint32(cfg.MaxConcurrentStreams)
	o.MaxConnections = cfg.MaxConnections
	o.MaxConnectionsPerPeer = cfg.MaxConnectionsPerPeer
	o.MaxInflightBytesPerPeer = cfg.MaxInflightBytesPerPeer
	if o.MaxInflightBytesPerPeer == 0 {
		o.MaxInflightBytesPerPeer = -1 // the flag's 0 is "no bound"
	}
	o.HandshakeTimeout = cfg.HandshakeTimeout
	o.MaxUnauthenticatedConnections = cfg.MaxUnauthenticatedConnections
	o.MaxUnauthenticatedPerPeer = cfg.MaxUnauthenticatedPerPeer
	o.TLSHandshakeTimeout = cfg.TLSHandshakeTimeout
	o.KeepaliveMinTime = cfg.KeepaliveMinTime
	o.MaxConnectionIdle = cfg.MaxConnectionIdle
	return o
}
