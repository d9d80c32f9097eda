package softhsmtest

import (
	"context"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"

	signerv1 "github.com/signerd/signerd/gen/signer/v1"
)

// TestHSMFault: the token's object store disappears under a running signerd
// (see softhsm.Away for what SoftHSM2 then does). Signing fails fast with
// UNAVAILABLE / HSM_UNAVAILABLE, the health service says NOT_SERVING,
// Verify keeps answering (it needs no HSM), and when the token is back the
// daemon re-initialises the library, logs in and signs again by itself. A
// dead token is also noticed while idle. A PIN changed meanwhile is offered
// once when the token returns, then never again.
func TestHSMFault(t *testing.T) {
	d := startDaemon(t, "--hsm-ping-interval", "300ms")
	key, org, fp := relPrepare(t, d)
	c := relDial(t, d)

	// clientTimeout is far above anything a healthy or failing-fast call
	// needs: a call that hung on the dead token would end DeadlineExceeded.
	const clientTimeout = 20 * time.Second
	sign := func() (*signerv1.SignResponse, []byte, error) {
		ctx, cancel := context.WithTimeout(context.Background(), clientTimeout)
		defer cancel()
		dg := relDigest()
		resp, err := c.Signer.Sign(ctx, &signerv1.SignRequest{KeyName: key, Digest: dg, ArtifactName: "fault.so"})
		return resp, dg, err
	}
	verify := func(dg []byte) error {
		ctx, cancel := context.WithTimeout(context.Background(), clientTimeout)
		defer cancel()
		resp, err := c.Signer.Verify(ctx, &signerv1.VerifyRequest{Org: org, Digest: dg})
		if err == nil && (!resp.GetVerified() || resp.GetSignerFingerprint() != fp) {
			t.Fatalf("Verify: %v", resp)
		}
		return err
	}
	mustSign := func(what string) []byte {
		t.Helper()
		resp, dg, err := sign()
		if err != nil {
			t.Fatalf("%s: Sign: %v", what, err)
		}
		if resp.GetKeyFingerprint() != fp {
			t.Fatalf("%s: signed by %s, want %s", what, resp.GetKeyFingerprint(), fp)
		}
		if err := verify(dg); err != nil {
			t.Fatalf("%s: Verify of a fresh signature: %v", what, err)
		}
		return dg
	}
	wantDown := func(what string) error {
		t.Helper()
		start := time.Now()
		_, _, err := sign()
		took := time.Since(start)
		if status.Code(err) != codes.Unavailable || relReason(err) != "HSM_UNAVAILABLE" {
			t.Fatalf("%s: Sign: %v, want UNAVAILABLE with reason HSM_UNAVAILABLE", what, err)
		}
		if what != "" {
			t.Logf("%s: Sign failed in %s: %s", what, took.Round(time.Millisecond), status.Convert(err).Message())
		}
		return err
	}

	before := mustSign("healthy")

	// The fault, met by a call.
	away := d.tok.MoveAway(t)
	err := wantDown("token gone")
	if msg := status.Convert(err).Message(); !strings.Contains(msg, d.tok.Label) || !strings.Contains(msg, "reconnecting") {
		t.Fatalf("the message should name the token and say what happens next: %s", msg)
	}
	if st := relHealth(t, c); st != grpc_health_v1.HealthCheckResponse_NOT_SERVING {
		t.Fatalf("health %v with the token gone, want NOT_SERVING", st)
	}
	for range 5 {
		wantDown("")
	}
	if err := verify(before); err != nil {
		t.Fatalf("Verify needs no HSM and must keep working: %v", err)
	}
	r := signctl(t, d, "sign", writeFile(t, t.TempDir(), "x.so", []byte("x")), "--key", key)
	if r.code != 3 || !strings.Contains(r.stderr, "HSM token") || !strings.Contains(r.stderr, "reconnecting") {
		t.Fatalf("signctl sign with the token gone: exit %d, want 3 and a message saying the HSM is down\n%s%s", r.code, r.stdout, r.stderr)
	}

	away.Restore(t)
	relWaitFor(t, "SERVING after the token came back", 15*time.Second, func() bool {
		return relHealth(t, c) == grpc_health_v1.HealthCheckResponse_SERVING
	})
	mustSign("recovered")
	d.waitForLog(t, "HSM token recovered")

	// The fault while idle: the periodic check notices it.
	away = d.tok.MoveAway(t)
	relWaitFor(t, "NOT_SERVING without any call", 15*time.Second, func() bool {
		return relHealth(t, c) == grpc_health_v1.HealthCheckResponse_NOT_SERVING
	})
	wantDown("idle fault")
	away.Restore(t)
	relWaitFor(t, "SERVING again", 15*time.Second, func() bool {
		return relHealth(t, c) == grpc_health_v1.HealthCheckResponse_SERVING
	})
	mustSign("recovered from the idle fault")

	// The PIN is changed while the token is away: signerd offers its PIN
	// once when the token returns, is refused, and stops there.
	oldPIN := d.tok.PIN
	away = d.tok.MoveAway(t)
	wantDown("token gone before the PIN change")
	away.ChangePIN(t, "changed-"+oldPIN)
	away.Restore(t)
	const refused = "refused the PIN when signerd reconnected"
	relWaitFor(t, "the refused PIN in the log", 15*time.Second, func() bool {
		return strings.Contains(d.logs.String(), refused)
	})
	attempts := strings.Count(d.logs.String(), "HSM reconnect attempt")
	time.Sleep(2 * time.Second) // several times the backoff in force
	logs := d.logs.String()
	if n := strings.Count(logs, "HSM reconnect attempt"); n != attempts {
		t.Fatalf("signerd kept reconnecting after the PIN was refused: %d attempts, then %d", attempts, n)
	}
	if n := strings.Count(logs, refused); n != 1 {
		t.Fatalf("the PIN refusal was logged %d times, want once", n)
	}
	if st := relHealth(t, c); st != grpc_health_v1.HealthCheckResponse_NOT_SERVING {
		t.Fatalf("health %v after the PIN was refused, want NOT_SERVING", st)
	}
	err = wantDown("PIN refused")
	if msg := status.Convert(err).Message(); !strings.Contains(msg, "PIN") || !strings.Contains(msg, "restart") {
		t.Fatalf("the message should say the PIN was refused and what to do: %s", msg)
	}
	for _, pin := range []string{oldPIN, d.tok.PIN} {
		if strings.Contains(logs, pin) {
			t.Fatal("a PIN is in signerd's log")
		}
	}

	// The operator's fix: restart with the new PIN.
	if err := d.stop(t); err != nil {
		t.Logf("stop while the HSM is down: %v", err)
	}
	d.pinFile = d.tok.WritePINFile(t)
	d.start(t, "--hsm-ping-interval", "300ms")
	c = relDial(t, d)
	mustSign("restarted with the new PIN")
	if err := verify(before); err != nil {
		t.Fatalf("a signature from before the faults: %v", err)
	}
}
