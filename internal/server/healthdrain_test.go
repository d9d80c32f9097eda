package server

import (
	"context"
	"net"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health/grpc_health_v1"
)

// TestHealthWatchDoesNotHoldTheDrain: one idle Health/Watch stream must
// not keep GracefulStop (SIGTERM's drain) waiting for --shutdown-timeout.
// Stop's order is the one Server.Stop uses: health Shutdown, then
// GracefulStop.
func TestHealthWatchDoesNotHoldTheDrain(t *testing.T) {
	l, err := net.Listen("unix", t.TempDir()+"/s.sock")
	if err != nil {
		t.Fatal(err)
	}
	gs := grpc.NewServer()
	hs := newDrainingHealth()
	grpc_health_v1.RegisterHealthServer(gs, hs)
	go gs.Serve(l)
	defer gs.Stop()

	conn, err := grpc.NewClient("unix://"+l.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	w, err := grpc_health_v1.NewHealthClient(conn).Watch(context.Background(), &grpc_health_v1.HealthCheckRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Recv(); err != nil { // the stream is established
		t.Fatal(err)
	}

	hs.Shutdown()
	done := make(chan struct{})
	go func() { gs.GracefulStop(); close(done) }()
	select {
	case <-done:
	case <-time.After(20 * time.Second): // a bound on a hang, not a measurement
		t.Fatal("GracefulStop still waits for an idle Health/Watch stream after the health service shut down")
	}
}
