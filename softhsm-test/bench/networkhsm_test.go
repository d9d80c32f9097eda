package bench

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/signerd/signerd/client"
	signerv1 "github.com/signerd/signerd/gen/signer/v1"
	"github.com/signerd/signerd/internal/skill"
	"github.com/signerd/signerd/internal/testutil/softhsm"
)

// A network HSM (issue #14), reached two ways, each paying a round trip
// of at least 10 ms per PKCS#11 call that crosses the network:
//
//   - ECDSA P-256: the token behind p11-kit's remoting (p11-kit-client.so
//     in signerd, `p11-kit server` in front of SoftHSM2) with a relay on
//     the way that holds every message 5 ms in each direction. p11-kit
//     0.24's RPC does not carry CKM_EDDSA (README, "PKCS#11 modules and
//     HSMs"), so Ed25519 cannot take this route.
//   - Ed25519: the token behind the test-only forwarding module
//     (softhsm.Forwarder) with SIGNERD_FWD_DELAY_MS=10: each signing call
//     (C_SignInit, C_Sign) sleeps 10 ms, holding no lock, before SoftHSM2
//     serves it. Other calls are not delayed.
//
// signerd's throughput must then grow with --max-sessions: no lock may be
// held across a round trip.

const (
	keyNetwork   = "bench-network"
	keyNetworkEd = "bench-network-ed25519"
	networkDelay = 5 * time.Millisecond
)

var networkSessions = []int{1, 8, 32}

// networkHSM measures network-hsm-sign-ecdsa-sessions-1, -8 and -32,
// network-hsm-sessions-32-vs-1, and the same for Ed25519
// (network-hsm-sign-ed25519-sessions-N, network-hsm-ed25519-sessions-32-vs-1),
// repetition by repetition.
func (s *suite) networkHSM() []result {
	t := s.t
	tok := softhsm.NewToken(t)
	route := tok.Route(t, "p11-kit-remote")
	server := route.Env[0][len("P11_KIT_SERVER_ADDRESS=unix:path="):]
	relay := softhsm.DelayRelay(t, server, networkDelay)
	pinFile := tok.WritePINFile(t)
	dbEC := filepath.Join(t.TempDir(), "signerd.db")

	// The forwarder also reads its settings from this process's
	// environment (t.Setenv); the daemons get them explicitly.
	fwdDelay := 2 * networkDelay
	fwdMS := strconv.Itoa(int(fwdDelay / time.Millisecond))
	fwd := tok.Forwarder(t, map[string]string{"DELAY_MS": fwdMS})
	fwdEnv := []string{"SIGNERD_FWD_MODULE=" + tok.ModulePath, "SIGNERD_FWD_DELAY_MS=" + fwdMS}
	dbEd := filepath.Join(t.TempDir(), "signerd-ed25519.db")

	noteEC := fmt.Sprintf("SkillService.SignSkill (ECDSA P-256), %d clients, closed loop; signerd --pkcs11-module p11-kit-client.so to a p11-kit server in front of SoftHSM2, through a relay adding %s each way",
		s.cfg.clients, networkDelay)
	noteEd := fmt.Sprintf("SignerService.Sign (Ed25519), %d clients, closed loop; signerd --pkcs11-module the test-only forwarder in front of SoftHSM2, sleeping %s in each C_SignInit and C_Sign",
		s.cfg.clients, fwdDelay)
	ec, ed := map[int]*point{}, map[int]*point{}
	for _, n := range networkSessions {
		ec[n] = &point{name: fmt.Sprintf("network-hsm-sign-ecdsa-sessions-%d", n), unit: "sigs/s", note: noteEC + fmt.Sprintf("; --max-sessions %d", n)}
		ed[n] = &point{name: fmt.Sprintf("network-hsm-sign-ed25519-sessions-%d", n), unit: "sigs/s", note: noteEd + fmt.Sprintf("; --max-sessions %d", n)}
	}
	ratioEC := &point{name: "network-hsm-sessions-32-vs-1", unit: "sigs/s", baseline: ec[1].name, target: 8, cmp: ">=",
		note: "network-hsm-sign-ecdsa-sessions-32 over -sessions-1, same repetition"}
	ratioEd := &point{name: "network-hsm-ed25519-sessions-32-vs-1", unit: "sigs/s", baseline: ed[1].name, target: 8, cmp: ">=",
		note: "network-hsm-sign-ed25519-sessions-32 over -sessions-1, same repetition"}
	for rep := range s.cfg.reps {
		rEC, rEd := map[int]float64{}, map[int]float64{}
		for _, n := range networkSessions {
			d := startNetworkDaemon(t, tok, route.ModulePath, []string{"P11_KIT_SERVER_ADDRESS=unix:path=" + relay}, pinFile, dbEC, n)
			if rep == 0 && n == networkSessions[0] {
				signctl(t, d, "key", "create", keyNetwork, "--algorithm", "ecdsa-p256", "--org", "bench.example.com")
			}
			st := s.networkLoad(d)
			d.stop(t)
			rEC[n] = st.rate
			ec[n].addValue(st.rate)

			d = startNetworkDaemon(t, tok, fwd, fwdEnv, pinFile, dbEd, n)
			if !strings.Contains(d.logs.String(), "module="+fwd) {
				t.Fatalf("signerd did not load the forwarding module %s:\n%s", fwd, d.logs.String())
			}
			if rep == 0 && n == networkSessions[0] {
				signctl(t, d, "key", "create", keyNetworkEd, "--algorithm", "ed25519")
			}
			st = s.networkLoadEd(d)
			d.stop(t)
			rEd[n] = st.rate
			ed[n].addValue(st.rate)
		}
		ratioEC.add(rEC[32], rEC[1], rEC[32]/rEC[1])
		ratioEd.add(rEd[32], rEd[1], rEd[32]/rEd[1])
		s.logf("network HSM rep %d/%d: ECDSA 1 session %.0f/s, 8 sessions %.0f/s, 32 sessions %.0f/s (32 vs 1: %.1f); Ed25519 %.0f/s, %.0f/s, %.0f/s (32 vs 1: %.1f)",
			rep+1, s.cfg.reps, rEC[1], rEC[8], rEC[32], rEC[32]/rEC[1], rEd[1], rEd[8], rEd[32], rEd[32]/rEd[1])
	}
	return []result{ec[1].result(), ec[8].result(), ec[32].result(), ratioEC.result(),
		ed[1].result(), ed[8].result(), ed[32].result(), ratioEd.result()}
}

// networkLoadEd drives Sign (Ed25519) from s.cfg.clients connections to d.
// In the smoke run it also checks that every one of the s.cfg.ops
// operations returned a signature.
func (s *suite) networkLoadEd(d *daemon) loadStats {
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
	var signed atomic.Int64
	st, err := closedLoop(len(conns), s.cfg.window(), func(i int) error {
		dg := s.digest()
		resp, err := conns[i].Signer.Sign(context.Background(), &signerv1.SignRequest{KeyName: keyNetworkEd, Digest: dg[:], ArtifactName: "bench"})
		if err == nil && len(resp.GetSignature()) != 64 {
			err = fmt.Errorf("Sign returned a %d-byte signature", len(resp.GetSignature()))
		}
		if err == nil {
			signed.Add(1)
		}
		return err
	})
	if err != nil {
		t.Fatalf("%v\n%s", err, d.logs.String())
	}
	if s.cfg.ops > 0 && signed.Load() != s.cfg.ops {
		t.Fatalf("Ed25519 through the delaying forwarder: %d signatures, want %d", signed.Load(), s.cfg.ops)
	}
	return st
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

// startNetworkDaemon starts signerd on the token through module (with env,
// besides SOFTHSM2_CONF) with --max-sessions n and waits until it serves.
func startNetworkDaemon(t *testing.T, tok *softhsm.Token, module string, env []string, pinFile, db string, n int) *daemon {
	t.Helper()
	d := &daemon{
		tok:     tok,
		socket:  filepath.Join(t.TempDir(), "run", "signerd.sock"),
		db:      db,
		pinFile: pinFile,
		logs:    &syncBuffer{},
		exited:  make(chan error, 1),
	}
	d.run(t, env, 60*time.Second,
		"--pkcs11-module", module, "--token-label", tok.Label, "--pin-file", pinFile,
		"--db", db, "--socket", d.socket, "--log-level", "info", "--max-sessions", strconv.Itoa(n))
	return d
}
