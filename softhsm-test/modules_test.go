package softhsmtest

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/health/grpc_health_v1"

	"github.com/signerd/signerd/internal/skill"
	"github.com/signerd/signerd/internal/testutil/softhsm"
)

// startDaemonVia starts signerd on a new token reached through the named
// route (softhsm.RouteNames, softhsm.DelayedForwarder): SoftHSM2's library,
// OpenSC's pkcs11-spy in front of it, p11-kit's client talking to a p11-kit
// server, or the test-only forwarding module delaying each signing call.
func startDaemonVia(t *testing.T, routeName string, extraArgs ...string) (*daemon, softhsm.Route) {
	t.Helper()
	tok := softhsm.NewToken(t)
	route := tok.Route(t, routeName)
	dir := t.TempDir()
	d := &daemon{
		t:       t,
		tok:     tok,
		dir:     dir,
		socket:  filepath.Join(dir, "run", "signerd.sock"),
		db:      filepath.Join(dir, "signerd.db"),
		pinFile: tok.WritePINFile(t),
		module:  route.ModulePath,
		env:     route.Env,
	}
	d.start(t, extraArgs...)
	return d, route
}

// TestModuleMatrix runs a representative part of the suite through every
// PKCS#11 module this machine has: keys of both algorithms created and
// imported, Sign, SignBatch, SignSkill, Verify (online, offline, openssl),
// rotation, the audit log and its checkpoints, and recovery after the
// token disappears and comes back. p11-kit 0.24's RPC does not carry
// CKM_EDDSA, so through it Ed25519 is refused with a message saying so
// and everything ECDSA is served. The delayed forwarder (SoftHSM2 behind
// the test-only forwarding module, each signing call held 2 ms) runs the
// Ed25519 package path (Sign, SignBatch) through a module other than
// SoftHSM2's own library, as p11-kit's route cannot.
func TestModuleMatrix(t *testing.T) {
	for _, name := range append(slices.Clone(softhsm.RouteNames), softhsm.DelayedForwarder) {
		t.Run(name, func(t *testing.T) {
			d, route := startDaemonVia(t, name, "--audit-checkpoint-interval", "1s", "--hsm-ping-interval", "300ms")
			dir := t.TempDir()
			if !strings.Contains(d.logs.String(), "PKCS#11 token capabilities") || !strings.Contains(d.logs.String(), "module="+route.ModulePath) {
				t.Fatalf("no capabilities logged at start, or not through %s:\n%s", route.ModulePath, d.logs.String())
			}

			// ECDSA P-256: created and imported, signs skills.
			mustSignctl(t, d, "key", "create", "skills", "--algorithm", "ecdsa-p256", "--org", "example.com")
			pemKey, err := os.ReadFile(filepath.Join("testdata", "schemapin", "keys", "priv_pkcs8.pem"))
			if err != nil {
				t.Fatal(err)
			}
			mustSignctl(t, d, "key", "import", "skills-imported", "--algorithm", "ecdsa-p256",
				"--private-key", writeFile(t, dir, "priv.pem", pemKey), "--org", "example.com")
			matrixSkill(t, d, "skills")
			matrixSkill(t, d, "skills-imported")

			// Ed25519: created and imported, signs packages one at a time
			// (Sign) and several over one stream (SignBatch).
			if route.EdDSA {
				mustSignctl(t, d, "key", "create", "release", "--algorithm", "ed25519")
				copyFixture(t, dir, "release.seed.bin")
				mustSignctl(t, d, "key", "import", "imported", "--algorithm", "ed25519", "--private-key", filepath.Join(dir, "release.seed.bin"))
				for _, key := range []string{"release", "imported"} {
					mustSignctl(t, d, "trust", "add", "--org", "acme", "--key", key)
					matrixPackages(t, d, key)
				}
			} else {
				for _, args := range [][]string{
					{"key", "create", "release", "--algorithm", "ed25519"},
					{"key", "import", "imported", "--algorithm", "ed25519", "--private-key", copyFixture(t, dir, "release.seed.bin")},
				} {
					r := signctl(t, d, args...)
					if r.code != 2 || !strings.Contains(r.stderr, "this HSM offers no CKM_EDDSA; use ecdsa-p256") {
						t.Fatalf("signctl %v through %s: exit %d, want 2 and a message naming CKM_EDDSA\n%s%s", args, name, r.code, r.stdout, r.stderr)
					}
				}
				// The log key is Ed25519 too: the daemon serves without
				// signed notes, and says so.
				d.waitForLog(t, "transparency-log checkpoints are off")
			}

			// Rotation: the new version is made in the token and signs.
			r := mustSignctl(t, d, "key", "rotate", "skills", "-o", "json").json(t)
			if r["key"].(map[string]any)["version"].(float64) != 2 {
				t.Fatalf("rotate: %v", r)
			}
			matrixSkill(t, d, "skills")

			// Recovery: the token's store disappears and comes back; the
			// daemon re-initialises the module and signs again.
			c := relDial(t, d)
			away := d.tok.MoveAway(t)
			relWaitFor(t, "NOT_SERVING with the token gone", 15*time.Second, func() bool {
				return relHealth(t, c) == grpc_health_v1.HealthCheckResponse_NOT_SERVING
			})
			if r := signctl(t, d, "skill", "sign", makeSkill(t), "--key", "skills", "--domain", "example.com"); r.code != 3 {
				t.Fatalf("skill sign with the token gone: exit %d, want 3\n%s", r.code, r.stderr)
			}
			away.Restore(t)
			relWaitFor(t, "SERVING after the token came back", 15*time.Second, func() bool {
				return relHealth(t, c) == grpc_health_v1.HealthCheckResponse_SERVING
			})
			matrixSkill(t, d, "skills")
			if route.EdDSA {
				matrixPackages(t, d, "release")
			}

			// The audit log: intact, checkpointed at its head by the HSM's
			// audit key (ECDSA, so on every route).
			var recs []auditRecord
			if err := json.Unmarshal([]byte(mustSignctl(t, d, "audit", "list", "-o", "json").stdout), &recs); err != nil || len(recs) == 0 {
				t.Fatalf("audit list: %d records, %v", len(recs), err)
			}
			head := recs[len(recs)-1].Seq
			waitFor(t, "a checkpoint at the head of the audit log", 15*time.Second, func() bool {
				v := mustSignctl(t, d, "audit", "verify", "-o", "json").json(t)
				cp, ok := v["latest_checkpoint"].(map[string]any)
				return v["intact"] == true && ok && uint64(cp["seq"].(float64)) >= head
			})
			if route.Trace != "" {
				// The calls went through the spy, and so did both mechanisms.
				trace, err := os.ReadFile(route.Trace)
				if err != nil || !strings.Contains(string(trace), "C_Sign") || !strings.Contains(string(trace), "CKM_ECDSA") || !strings.Contains(string(trace), "CKM_EDDSA") {
					t.Fatalf("pkcs11-spy's trace does not show the signatures (%v, %d bytes)", err, len(trace))
				}
			}
			pub := writeFile(t, dir, "audit.pub.pem", []byte(mustSignctl(t, d, "audit", "public-key").stdout))
			if err := d.stop(t); err != nil {
				t.Fatalf("signerd stopped with %v\n%s", err, d.logs.String())
			}
			if r := mustSignctl(t, nil, "audit", "verify", "--db", d.db, "--audit-key", pub); !strings.HasPrefix(r.stdout, "OK: audit log intact") {
				t.Fatalf("offline audit verify: %s", r.stdout)
			}
		})
	}
}

// matrixSkill signs a fresh skill with key and checks the signature with
// openssl, offline with the library and online through the daemon.
func matrixSkill(t *testing.T, d *daemon, key string) {
	t.Helper()
	dir := makeSkill(t)
	mustSignctl(t, d, "skill", "sign", dir, "--key", key, "--domain", "example.com")
	raw, err := os.ReadFile(filepath.Join(dir, ".schemapin.sig"))
	if err != nil {
		t.Fatal(err)
	}
	sig, err := skill.ParseSignature(raw)
	if err != nil {
		t.Fatal(err)
	}
	m, err := skill.Canonicalize(t.Context(), dir)
	if err != nil {
		t.Fatal(err)
	}
	tmp := t.TempDir()
	pubPEM := mustSignctl(t, d, "key", "public", key).stdout
	pubFile := writeFile(t, tmp, "pub.pem", []byte(pubPEM))
	der, _ := base64.StdEncoding.DecodeString(sig.Signature)
	if err := openssl(t, "dgst", "-sha256", "-verify", pubFile, "-signature", writeFile(t, tmp, "sig.der", der),
		writeFile(t, tmp, "root.bin", m.Root[:])); err != nil {
		t.Fatalf("openssl rejects the skill signature by %s: %v", key, err)
	}
	res, err := skill.VerifyOffline(t.Context(), skill.VerifyInput{Dir: dir, PublicKeyPEM: []byte(pubPEM), Domain: "example.com"})
	if err != nil || !res.Valid {
		t.Fatalf("offline skill verify (%s): %+v %v", key, res, err)
	}
	mustSignctl(t, d, "skill", "verify", dir, "--domain", "example.com", "--public-key", pubFile)
}

// matrixPackages signs one package (Sign) and two more in one call
// (SignBatch) with key, trusted by org acme, and verifies each online and
// with openssl.
func matrixPackages(t *testing.T, d *daemon, key string) {
	t.Helper()
	dir := t.TempDir()
	pubFile := writeFile(t, dir, "pub.pem", []byte(mustSignctl(t, d, "key", "public", key).stdout))
	one := writeFile(t, dir, "one.so", []byte("package one by "+key))
	mustSignctl(t, d, "sign", one, "--key", key)
	two := writeFile(t, dir, "two.so", []byte("package two by "+key))
	three := writeFile(t, dir, "three.so", []byte("package three by "+key))
	mustSignctl(t, d, "sign", two, three, "--key", key)
	for _, pkg := range []string{one, two, three} {
		mustSignctl(t, d, "verify", pkg, "--org", "acme")
		raw, err := os.ReadFile(pkg + ".sig")
		if err != nil {
			t.Fatal(err)
		}
		var doc map[string]any
		if err := json.Unmarshal(raw, &doc); err != nil {
			t.Fatal(err)
		}
		sigBytes, _ := base64.StdEncoding.DecodeString(doc["signature"].(string))
		content, err := os.ReadFile(pkg)
		if err != nil {
			t.Fatal(err)
		}
		digest := sha256.Sum256(content)
		if err := openssl(t, "pkeyutl", "-verify", "-pubin", "-inkey", pubFile, "-rawin",
			"-in", writeFile(t, dir, "digest.bin", digest[:]), "-sigfile", writeFile(t, dir, "sig.bin", sigBytes)); err != nil {
			t.Fatalf("openssl rejects %s signed by %s: %v", filepath.Base(pkg), key, err)
		}
	}
}
