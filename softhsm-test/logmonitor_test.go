package softhsmtest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/signerd/signerd/client"
	signerv1 "github.com/signerd/signerd/gen/signer/v1"
)

// TestLogMonitor runs `signctl log monitor` as a witness against the real
// daemon while its operator misbehaves as one who holds the database and
// the token would: restores an older copy of the database (a rollback),
// then signs other things on it until the log is as long as the one the
// witness accepted (a rewritten history: same size, another root), and
// finally points the witness at another log. Every refusal is exit 1 with
// its reason, leaves the witness's state as it was and keeps the refused
// note as evidence.
func TestLogMonitor(t *testing.T) {
	a := startDaemon(t)
	dir := t.TempDir()
	state := filepath.Join(dir, "witness")
	mustSignctl(t, a, "key", "create", "release", "--algorithm", "ed25519")
	vkey := strings.TrimSpace(mustSignctl(t, a, "log", "public-key").stdout)
	sign := func(d *daemon, name string) {
		t.Helper()
		f := writeFile(t, dir, name, []byte("contents of "+name))
		mustSignctl(t, d, "sign", f, "--key", "release")
		mustSignctl(t, d, "log", "proof", f) // a checkpoint that covers it
	}
	monitor := func(d *daemon, args ...string) (result, map[string]any) {
		t.Helper()
		r := signctl(t, d, append([]string{"log", "monitor", "--state", state, "-o", "json"}, args...)...)
		var j map[string]any
		if err := json.Unmarshal([]byte(r.stdout), &j); err != nil && r.code != 2 {
			t.Fatalf("monitor output: %v\n%s%s", err, r.stdout, r.stderr)
		}
		return r, j
	}

	if r := signctl(t, a, "log", "monitor", "--state", state); r.code != 2 || !strings.Contains(r.stderr, "--log-key") {
		t.Fatalf("first run without --log-key: exit %d, %s", r.code, r.stderr)
	}
	if _, err := os.Stat(state); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("a refused first run made its state directory: %v", err)
	}
	sign(a, "p1")
	r, j := monitor(a, "--log-key", vkey)
	if r.code != 0 || j["accepted"] != true || j["first_run"] != true {
		t.Fatalf("first run: exit %d %v %s", r.code, j, r.stderr)
	}
	n1 := uint64(j["tree_size"].(float64))

	// The operator's copy of the database at this point.
	if err := a.stop(t); err != nil {
		t.Fatalf("stop: %v\n%s", err, a.logs.String())
	}
	old := filepath.Join(dir, "old.db")
	if err := os.WriteFile(old, mustRead(t, a.db), 0o600); err != nil {
		t.Fatal(err)
	}
	a.start(t)
	sign(a, "p2")
	sign(a, "p3")
	accepted1 := mustRead(t, filepath.Join(state, "state.json"))
	// A log that signs a larger tree and will not prove it extends the
	// accepted one (as a forked log must) is a fork; one that cannot be
	// reached for the proof is not, and its note is kept all the same.
	for _, tc := range []struct {
		code     codes.Code
		exit     int
		evidence string
	}{{codes.FailedPrecondition, 1, "LOG_FORK"}, {codes.NotFound, 1, "LOG_FORK"},
		{codes.Unavailable, 3, "could not be checked is kept in"}, {codes.Internal, 3, "could not be checked is kept in"}} {
		sock := refusingLog(t, a, tc.code)
		r := signctl(t, a, "--socket", sock, "log", "monitor", "--state", state, "-o", "json")
		out := r.stdout + r.stderr
		if r.code != tc.exit || !strings.Contains(out, tc.evidence) || !strings.Contains(out, "refused-") {
			t.Fatalf("a log refusing the consistency proof (%v): exit %d, want %d with %q and the note kept\n%s", tc.code, r.code, tc.exit, tc.evidence, out)
		}
		if got := mustRead(t, filepath.Join(state, "state.json")); !bytes.Equal(got, accepted1) {
			t.Fatalf("an unproven checkpoint changed the state:\n%s", got)
		}
	}
	r, j = monitor(a)
	if r.code != 0 || j["accepted"] != true || j["consistency_proof_checked"] != true || uint64(j["tree_size"].(float64)) <= n1 {
		t.Fatalf("second run: exit %d %v %s", r.code, j, r.stderr)
	}
	n2 := uint64(j["tree_size"].(float64))
	if r, j = monitor(a); r.code != 0 || j["accepted"] != true || uint64(j["tree_size"].(float64)) != n2 {
		t.Fatalf("unchanged log: exit %d %v", r.code, j)
	}
	accepted := mustRead(t, filepath.Join(state, "state.json"))
	var st map[string]any
	if err := json.Unmarshal(accepted, &st); err != nil || st["log_key"] != vkey || st["origin"] == "" {
		t.Fatalf("state.json %s (%v)", accepted, err)
	}
	refused := func(want string) {
		t.Helper()
		r, j := monitor(a)
		if r.code != 1 || j["accepted"] != false || j["reason"] != want {
			t.Fatalf("monitor: exit %d %v, want exit 1 reason %s\n%s", r.code, j, want, r.stderr)
		}
		if ev, _ := j["evidence"].(string); ev == "" {
			t.Fatalf("no evidence kept: %v", j)
		} else if _, err := os.Stat(ev); err != nil {
			t.Fatalf("evidence: %v", err)
		}
		if got := mustRead(t, filepath.Join(state, "state.json")); !bytes.Equal(got, accepted) {
			t.Fatalf("a refusal changed the state:\n%s", got)
		}
		text := signctl(t, a, "log", "monitor", "--state", state)
		if text.code != 1 || !strings.HasPrefix(text.stderr, "ALERT: ") {
			t.Fatalf("text refusal: exit %d, stderr %q", text.code, text.stderr)
		}
	}

	// Rollback: the operator restores the old database, on the same token
	// (the same log key, the same origin).
	if err := a.stop(t); err != nil {
		t.Fatal(err)
	}
	a.db = old
	a.start(t)
	refused("LOG_ROLLBACK")

	// A rewritten history: other signatures on the old database until the
	// log is as long as the accepted one, then a checkpoint of that size.
	c, err := client.DialUnix(a.socket)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	size := func() uint64 {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		resp, err := c.Log.ListLeaves(ctx, &signerv1.ListLeavesRequest{Start: 0, Limit: 1})
		if err != nil {
			t.Fatal(err)
		}
		return resp.GetTreeSize()
	}
	for i := 0; size() < n2; i++ {
		f := writeFile(t, dir, fmt.Sprintf("q%d", i), []byte(fmt.Sprintf("forged %d", i)))
		mustSignctl(t, a, "sign", f, "--key", "release")
	}
	got := size()
	mustSignctl(t, a, "log", "checkpoint", "--min-size", strconv.FormatUint(got, 10))
	t.Logf("accepted %d leaves; the rewritten log has %d", n2, got)
	refused("LOG_FORK")

	// Another log: a daemon on another token has another key; and a
	// --log-key other than the state's is refused before any fetch.
	other := startDaemon(t)
	otherKey := strings.TrimSpace(mustSignctl(t, other, "log", "public-key").stdout)
	r, j = monitor(other)
	if r.code != 1 || j["reason"] != "LOG_CHECKPOINT_INVALID" {
		t.Fatalf("another log: exit %d %v", r.code, j)
	}
	if r, _ := monitor(other, "--log-key", otherKey); r.code != 1 {
		t.Fatalf("another --log-key: exit %d", r.code)
	}
	if got := mustRead(t, filepath.Join(state, "state.json")); !bytes.Equal(got, accepted) {
		t.Fatal("refusals changed the state")
	}

	// A damaged state is bad input, and is left alone.
	damaged := []byte(`{"origin": "x"`)
	if err := os.WriteFile(filepath.Join(state, "state.json"), damaged, 0o600); err != nil {
		t.Fatal(err)
	}
	if r := signctl(t, other, "log", "monitor", "--state", state); r.code != 2 || !strings.Contains(r.stderr, "damaged") {
		t.Fatalf("damaged state: exit %d %s", r.code, r.stderr)
	}
	if got := mustRead(t, filepath.Join(state, "state.json")); !bytes.Equal(got, damaged) {
		t.Fatal("a damaged state was overwritten")
	}
}

// refusingLog serves, on a new socket, d's latest checkpoint and answers
// every consistency proof request with code.
func refusingLog(t *testing.T, d *daemon, code codes.Code) string {
	t.Helper()
	c, err := client.DialUnix(d.socket)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cp, err := c.Log.GetCheckpoint(ctx, &signerv1.GetCheckpointRequest{})
	if err != nil {
		t.Fatal(err)
	}
	return fakeServer(t, func(g *grpc.Server) {
		signerv1.RegisterLogServiceServer(g, &refusingLogServer{note: cp.GetCheckpoint(), code: code})
	})
}

// fakeServer serves, on a new Unix socket it returns, a gRPC server with
// what register puts on it (something else than signerd listening where
// a client looks), until the test ends.
func fakeServer(t *testing.T, register func(*grpc.Server)) string {
	t.Helper()
	sock := filepath.Join(t.TempDir(), "fake.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	g := grpc.NewServer()
	register(g)
	go g.Serve(l)
	t.Cleanup(g.Stop)
	return sock
}

type refusingLogServer struct {
	signerv1.UnimplementedLogServiceServer
	note []byte
	code codes.Code
}

func (s *refusingLogServer) GetCheckpoint(context.Context, *signerv1.GetCheckpointRequest) (*signerv1.GetCheckpointResponse, error) {
	return &signerv1.GetCheckpointResponse{Checkpoint: s.note}, nil
}

func (s *refusingLogServer) GetConsistencyProof(context.Context, *signerv1.GetConsistencyProofRequest) (*signerv1.GetConsistencyProofResponse, error) {
	return nil, status.Error(s.code, "no proof")
}
