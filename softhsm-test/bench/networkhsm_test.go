package bench

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/signerd/signerd/client"
	signerv1 "github.com/signerd/signerd/gen/signer/v1"
	"github.com/signerd/signerd/internal/skill"
	"github.com/signerd/signerd/internal/testutil/softhsm"
)

// A network HSM (issue #14): the token behind p11-kit's remoting
// (p11-kit-client.so in signerd, `p11-kit server` in front of SoftHSM2)
// with a relay on the way that holds every message 5 ms in each direction,
// so each PKCS#11 call costs a round trip of at least 10 ms. signerd's
// throughput must then grow with --max-sessions: no lock may be held
// across a round trip. Only ECDSA P-256 is measured: p11-kit 0.24's RPC
// does not carry CKM_EDDSA (README, "PKCS#11 modules and HSMs").

const (
	keyNetwork   = "bench-network"
	networkDelay = 5 * time.Millisecond
)

// networkHSM measures network-hsm-sign-ecdsa-sessions-1, -8 and -32, and
// network-hsm-sessions-32-vs-1, repetition by repetition.
func (s *suite) networkHSM() []result {
	t := s.t
	tok := softhsm.NewToken(t)
	route := tok.Route(t, "p11-kit-remote")
	server := route.Env[0][len("P11_KIT_SERVER_ADDRESS=unix:path="):]
	relay := softhsm.DelayRelay(t, server, networkDelay)
	pinFile := tok.WritePINFile(t)
	db := filepath.Join(t.TempDir(), "signerd.db")

	sessions := []int{1, 8, 32}
	note := fmt.Sprintf("SkillService.SignSkill (ECDSA P-256), %d clients, closed loop; signerd --pkcs11-module p11-kit-client.so to a p11-kit server in front of SoftHSM2, through a relay adding %s each way",
		s.cfg.clients, networkDelay)
	points := map[int]*point{}
	for _, n := range sessions {
		points[n] = &point{name: fmt.Sprintf("network-hsm-sign-ecdsa-sessions-%d", n), unit: "sigs/s", note: note + fmt.Sprintf("; --max-sessions %d", n)}
	}
	ratio := &point{name: "network-hsm-sessions-32-vs-1", unit: "sigs/s", baseline: points[1].name, target: 8, cmp: ">=",
		note: "network-hsm-sign-ecdsa-sessions-32 over -sessions-1, same repetition"}
	for rep := range s.cfg.reps {
		rates := map[int]float64{}
		for _, n := range sessions {
			d := startNetworkDaemon(t, tok, route.ModulePath, "unix:path="+relay, pinFile, db, n)
			if rep == 0 && n == sessions[0] {
				signctl(t, d, "key", "create", keyNetwork, "--algorithm", "ecdsa-p256", "--org", "bench.example.com")
			}
			st := s.networkLoad(d)
			d.stop(t)
			rates[n] = st.rate
			points[n].addValue(st.rate)
		}
		ratio.add(rates[32], rates[1], rates[32]/rates[1])
		s.logf("network HSM rep %d/%d: 1 session %.0f/s, 8 sessions %.0f/s, 32 sessions %.0f/s (32 vs 1: %.1f)",
			rep+1, s.cfg.reps, rates[1], rates[8], rates[32], rates[32]/rates[1])
	}
	return []result{points[1].result(), points[8].result(), points[32].result(), ratio.result()}
}

// networkLoad drives SignSkill from s.cfg.clients connections to d.
func (s *suite) networkLoad(d *daemon) loadStats {
	t := s.t
	conns := make([]*client.Client, s.cfg.clients)
	for i := range conns {
		c, err := client.DialUnix(d.socket)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		conns[i] = c
	}
	st, err := closedLoop(len(conns), s.cfg.window(), func(i int) error {
		dg := s.digest()
		manifest := map[string]string{"SKILL.md": skill.FingerprintPrefix + hex.EncodeToString(dg[:])}
		root, err := skill.ComputeRoot(manifest)
		if err != nil {
			return err
		}
		resp, err := conns[i].Skills.SignSkill(context.Background(), &signerv1.SignSkillRequest{
			KeyName: keyNetwork, Root: root[:], FileManifest: manifest, Domain: "bench.example.com", SkillName: "bench-skill"})
		if err == nil && len(resp.GetSignatureDocument()) == 0 {
			err = errors.New("SignSkill returned no document")
		}
		return err
	})
	if err != nil {
		t.Fatalf("%v\n%s", err, d.logs.String())
	}
	return st
}

// startNetworkDaemon starts signerd on the token through p11-kit's client
// at addr with --max-sessions n and waits until it serves.
func startNetworkDaemon(t *testing.T, tok *softhsm.Token, module, addr, pinFile, db string, n int) *daemon {
	t.Helper()
	d := &daemon{
		tok:     tok,
		socket:  filepath.Join(t.TempDir(), "run", "signerd.sock"),
		db:      db,
		pinFile: pinFile,
		logs:    &syncBuffer{},
		exited:  make(chan error, 1),
	}
	d.cmd = exec.Command(bins.signerd,
		"--pkcs11-module", module, "--token-label", tok.Label, "--pin-file", pinFile,
		"--db", db, "--socket", d.socket, "--log-level", "info", "--max-sessions", strconv.Itoa(n))
	d.cmd.Env = append(os.Environ(), "SOFTHSM2_CONF="+tok.ConfPath, "P11_KIT_SERVER_ADDRESS="+addr)
	d.cmd.Stdout, d.cmd.Stderr = d.logs, d.logs
	if err := d.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { d.exited <- d.cmd.Wait() }()
	t.Cleanup(func() { d.stop(t) })
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case err := <-d.exited:
			d.exited <- err
			t.Fatalf("signerd exited during start-up: %v\n%s", err, d.logs.String())
		default:
		}
		if d.healthy() {
			return d
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("signerd did not become healthy\n%s", d.logs.String())
	return nil
}
