package softhsmtest

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/signerd/signerd/internal/pkgsig"
	"github.com/signerd/signerd/internal/store"
)

// TestStateEditedInEtcd: on etcd the state can be written behind a running
// daemon's back. Online audit verify reports a state its log does not
// explain, and the daemon refuses to sign a checkpoint that would vouch
// for it.
func TestStateEditedInEtcd(t *testing.T) {
	rs := newReplicaSet(t, 1, nil)
	d := rs.start(t, "--audit-checkpoint-interval", "1s")
	mustSignctl(t, d, "key", "create", "release", "--algorithm", "ed25519")
	mustSignctl(t, d, "trust", "add", "--org", "acme", "--key", "release")
	waitFor(t, "a checkpoint over the trust", 20*time.Second, func() bool {
		head, cp := repAuditIntact(t, d)
		return cp == head
	})
	v := mustSignctl(t, d, "audit", "verify", "-o", "json").json(t)
	if st, _ := v["state"].(map[string]any); st == nil || st["vouched"] != true {
		t.Fatalf("online verify before the edit: %v", v)
	}

	// The attacker writes their key into acme's trust in etcd.
	cli := rs.etcd.Client(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	key := rs.prefix + "orgs/acme"
	got, err := cli.Get(ctx, key)
	if err != nil || len(got.Kvs) != 1 {
		t.Fatalf("read %s: %v %v", key, got, err)
	}
	var o store.Org
	if err := json.Unmarshal(got.Kvs[0].Value, &o); err != nil {
		t.Fatal(err)
	}
	pub, _, _ := ed25519.GenerateKey(rand.Reader)
	der, _ := x509.MarshalPKIXPublicKey(pub)
	o.Trusted = append(o.Trusted, store.TrustedKey{Fingerprint: pkgsig.Fingerprint(pub), Algorithm: "ed25519", PublicKey: der, TrustedAt: time.Now().UTC()})
	b, _ := json.Marshal(o)
	if _, err := cli.Put(ctx, key, string(b)); err != nil {
		t.Fatal(err)
	}

	r := signctl(t, d, "audit", "verify")
	if r.code != 1 || !strings.Contains(r.stdout, "BROKEN: state unexplained:") {
		t.Fatalf("online verify after the edit: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	// A recorded operation moves the head; the next checkpoint would vouch
	// for the edited state and is refused.
	pkg := writeFile(t, t.TempDir(), "a.so", []byte("package"))
	mustSignctl(t, d, "sign", pkg, "--key", "release")
	waitFor(t, "a refused checkpoint", 20*time.Second, func() bool {
		return strings.Contains(d.logs.String(), "not signing a checkpoint over it") &&
			strings.Contains(d.logs.String(), "no audit record since changes it")
	})
}
