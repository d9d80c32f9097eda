package softhsmtest

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/signerd/signerd/internal/pkgsig"
	"github.com/signerd/signerd/internal/store"
)

// TestStateBehindTheDaemonsBack: an attacker who can write the database
// file adds their key to an org's trust directly, with no audit record.
// Before, the attacker's package verified OK and audit verify said intact.
// Now audit verify (offline on the file, and online) reports a state its
// checkpoints and records do not explain, signerd refuses to start on it,
// and starts only when told to accept exactly that state, which is audited.
func TestStateBehindTheDaemonsBack(t *testing.T) {
	d := startDaemon(t)
	dir := t.TempDir()
	mustSignctl(t, d, "key", "create", "release")
	mustSignctl(t, d, "trust", "add", "--org", "acme", "--key", "release")
	good := writeFile(t, dir, "good.so", []byte("a package signerd signed"))
	mustSignctl(t, d, "sign", good, "--key", "release")
	pubFile := writeFile(t, dir, "audit.pub.pem", []byte(mustSignctl(t, d, "audit", "public-key").stdout))
	if err := d.stop(t); err != nil {
		t.Fatalf("SIGTERM: %v\n%s", err, d.logs.String())
	}
	r := mustSignctl(t, nil, "audit", "verify", "--db", d.db, "--audit-key", pubFile, "-o", "json")
	if st, _ := r.json(t)["state"].(map[string]any); st == nil || st["vouched"] != true {
		t.Fatalf("an untouched database: state not vouched for: %s", r.stdout)
	}

	// The attacker's package and signature, and their key in acme's trust.
	attackerPub, attackerPriv, _ := ed25519.GenerateKey(rand.Reader)
	evil := writeFile(t, dir, "evil.so", []byte("the attacker's package"))
	digest := sha256.Sum256([]byte("the attacker's package"))
	doc := pkgsig.NewDocument(digest, attackerPub, ed25519.Sign(attackerPriv, digest[:]), time.Now())
	writeFile(t, dir, "evil.so.sig", doc.Encode())
	der, _ := x509.MarshalPKIXPublicKey(attackerPub)
	db, err := bolt.Open(d.db, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Update(func(tx *bolt.Tx) error {
		orgs := auditBucket(tx, "orgs")
		var o store.Org
		if err := json.Unmarshal(orgs.Get([]byte("acme")), &o); err != nil {
			return err
		}
		o.Trusted = append(o.Trusted, store.TrustedKey{Fingerprint: pkgsig.Fingerprint(attackerPub), Algorithm: "ed25519", PublicKey: der, TrustedAt: time.Now().UTC()})
		b, _ := json.Marshal(o)
		return orgs.Put([]byte("acme"), b)
	}); err != nil {
		t.Fatal(err)
	}
	db.Close()

	// Offline: a state the log does not explain.
	r = signctl(t, nil, "audit", "verify", "--db", d.db, "--audit-key", pubFile)
	if r.code != 1 || !strings.Contains(r.stdout, "BROKEN: state unexplained:") || !strings.Contains(r.stdout, "behind the daemon's back") {
		t.Fatalf("offline verify of the edited database: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	j := signctl(t, nil, "audit", "verify", "--db", d.db, "--audit-key", pubFile, "-o", "json")
	if p, _ := j.json(t)["problem"].(map[string]any); j.code != 1 || p == nil || p["kind"] != store.ChainStateUnexplained {
		t.Fatalf("offline verify -o json: exit %d %s", j.code, j.stdout)
	}

	// signerd refuses to serve it, naming the digest to accept.
	out := startRefused(t, d)
	if !strings.Contains(out, "refusing to serve a security state the audit log does not vouch for") {
		t.Fatalf("signerd's refusal does not say why:\n%s", out)
	}
	m := regexp.MustCompile(`--accept-state ([0-9a-f]{64})`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("signerd's refusal names no digest to accept:\n%s", out)
	}
	// Accepting another state accepts nothing.
	other := strings.Repeat("0", 64)
	if out := startRefused(t, d, "--accept-state", other); !strings.Contains(out, "names another state") {
		t.Fatalf("a wrong --accept-state:\n%s", out)
	}

	// Told to accept exactly this state, it starts, and says so in the log.
	d.start(t, "--accept-state", m[1])
	mustSignctl(t, d, "verify", evil, "--org", "acme") // accepted: the operator's call
	var accepted []auditRecord
	for _, rec := range auditList(t, d) {
		if rec.Operation == store.OpStateAccept {
			accepted = append(accepted, rec)
		}
	}
	if len(accepted) != 1 || accepted[0].Caller != "signerd" || !strings.Contains(accepted[0].Detail, "state_digest="+m[1]) ||
		!strings.Contains(accepted[0].Detail, "problem="+store.ChainStateUnexplained) {
		t.Fatalf("audited acceptances: %+v", accepted)
	}
	v := mustSignctl(t, d, "audit", "verify", "-o", "json").json(t)
	if st, _ := v["state"].(map[string]any); v["intact"] != true || st == nil || st["vouched"] != true || st["digest"] != m[1] {
		t.Fatalf("online verify after the acceptance: %v", v)
	}
	// The acceptance is not sticky: the same flag on the next start
	// accepts nothing new, and the vouched state needs nothing.
	if err := d.stop(t); err != nil {
		t.Fatal(err)
	}
	d.start(t, "--accept-state", m[1])
	n := 0
	for _, rec := range auditList(t, d) {
		if rec.Operation == store.OpStateAccept {
			n++
		}
	}
	if n != 1 {
		t.Fatalf("%d acceptances after a restart with a vouched state, want 1", n)
	}
}

// startRefused runs signerd on d's database, expecting it to refuse to
// start, and returns its output.
func startRefused(t *testing.T, d *daemon, extra ...string) string {
	t.Helper()
	cmd := exec.Command(bins.signerd, d.args(extra...)...)
	cmd.Env = append(os.Environ(), "SOFTHSM2_CONF="+d.tok.ConfPath)
	done := make(chan struct{})
	var out []byte
	var err error
	go func() { out, err = cmd.CombinedOutput(); close(done) }()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		cmd.Process.Kill()
		<-done
		t.Fatalf("signerd did not exit:\n%s", out)
	}
	if err == nil {
		t.Fatalf("signerd started on a state the log does not vouch for:\n%s", out)
	}
	if _, err := os.Stat(filepath.Join(d.dir, "run", "signerd.sock")); err == nil {
		t.Fatal("signerd left a socket behind after refusing to start")
	}
	return string(out)
}
