package softhsmtest

import (
	"context"
	"testing"
	"time"

	"google.golang.org/grpc/health/grpc_health_v1"
)

// TestEtcdQuorumLossFlipsHealth (issue #15): a replica whose etcd cluster
// loses its quorum reports NOT_SERVING, so load balancers and loaders
// move to a replica that can still record signatures, and SERVING again
// once the quorum is back. The daemon polls etcd with a linearizable read
// every second (2 s timeout): the flip is expected within 3 s; the test
// only waits for it, with room for a loaded machine, and logs how long
// it took.
func TestEtcdQuorumLossFlipsHealth(t *testing.T) {
	rs := newReplicaSet(t, 3, nil)
	d := rs.start(t)
	repPrepare(t, d)
	c := relDial(t, d)
	status := func() grpc_health_v1.HealthCheckResponse_ServingStatus {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		resp, err := c.Health.Check(ctx, &grpc_health_v1.HealthCheckRequest{})
		if err != nil {
			t.Fatalf("health check: %v", err)
		}
		return resp.GetStatus()
	}
	waitStatus := func(what string, want grpc_health_v1.HealthCheckResponse_ServingStatus) time.Duration {
		t.Helper()
		start := time.Now()
		relWaitFor(t, what, 60*time.Second, func() bool { return status() == want })
		return time.Since(start)
	}
	if got := status(); got != grpc_health_v1.HealthCheckResponse_SERVING {
		t.Fatalf("health with a healthy cluster: %v", got)
	}

	// Two of three members down: no quorum.
	leader := max(rs.etcd.Leader(), 0)
	other := (leader + 1) % 3
	rs.etcd.Kill(leader)
	rs.etcd.Kill(other)
	took := waitStatus("NOT_SERVING after the quorum is lost", grpc_health_v1.HealthCheckResponse_NOT_SERVING)
	t.Logf("quorum lost: NOT_SERVING after %s", took.Round(time.Millisecond))
	d.waitForLog(t, "store unavailable") // why health went NOT_SERVING

	// One member back: a quorum of two.
	rs.etcd.Restart(other)
	took = waitStatus("SERVING after the quorum returns", grpc_health_v1.HealthCheckResponse_SERVING)
	t.Logf("quorum back: SERVING after %s", took.Round(time.Millisecond))
	if _, _, err := repSign(context.Background(), c, "release"); err != nil {
		t.Fatalf("Sign after the quorum returned: %v", err)
	}
	rs.etcd.Restart(leader)
}
