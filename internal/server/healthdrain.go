package server

import (
	"context"
	"sync"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/health"
	"google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"
)

// drainingHealth is gRPC's health service whose Watch streams end when the
// drain starts. A Watch never ends by itself, so one idle watcher (a
// monitoring agent, a loader waiting for SERVING) would otherwise hold
// GracefulStop for the whole --shutdown-timeout on every stop and
// restart. Watchers first get NOT_SERVING (health.Server.Shutdown), then
// UNAVAILABLE, and reconnect to the next signerd.
type drainingHealth struct {
	*health.Server
	once     sync.Once
	draining chan struct{}
}

func newDrainingHealth() *drainingHealth {
	return &drainingHealth{Server: health.NewServer(), draining: make(chan struct{})}
}

// Shutdown reports NOT_SERVING for good and ends every Watch.
func (h *drainingHealth) Shutdown() {
	h.Server.Shutdown()
	h.once.Do(func() { close(h.draining) })
}

func (h *drainingHealth) Watch(req *grpc_health_v1.HealthCheckRequest, stream grpc_health_v1.Health_WatchServer) error {
	ctx, cancel := context.WithCancel(stream.Context())
	defer cancel()
	go func() {
		select {
		case <-h.draining:
			cancel()
		case <-ctx.Done():
		}
	}()
	err := h.Server.Watch(req, watchStream{stream, ctx})
	select {
	case <-h.draining:
		return status.Error(codes.Unavailable, "signerd is stopping")
	default:
		return err
	}
}

type watchStream struct {
	grpc_health_v1.Health_WatchServer
	ctx context.Context
}

func (w watchStream) Context() context.Context { return w.ctx }
