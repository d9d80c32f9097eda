package softhsmtest

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
	"golang.org/x/mod/sumdb/note"

	"github.com/signerd/signerd/internal/store"
)

// TestAuditEndToEnd drives the audit log through the real binaries: records
// from real operations, list and verify online, a final checkpoint signed
// by the HSM's audit key at SIGTERM, then offline verification of copies of
// the database, each tampered with through bbolt directly as an attacker
// holding the file would, against the audit public key.
func TestAuditEndToEnd(t *testing.T) {
	d := startDaemon(t, "--audit-checkpoint-interval", "1s")
	dir := t.TempDir()

	// Records from real operations.
	mustSignctl(t, d, "key", "create", "release", "--algorithm", "ed25519")
	mustSignctl(t, d, "trust", "add", "--org", "acme", "--key", "release")
	pkg := writeFile(t, dir, "a.so", []byte("package a"))
	mustSignctl(t, d, "sign", pkg, "--key", "release")
	mustSignctl(t, d, "verify", pkg, "--org", "acme")
	if r := signctl(t, d, "verify", pkg, "--org", "nobody"); r.code != 1 {
		t.Fatalf("verify for an org that trusts nothing: exit %d", r.code)
	}

	// The audit key: public, non-extractable, never a signing key.
	pubPEM := mustSignctl(t, d, "audit", "public-key").stdout
	pubFile := writeFile(t, dir, "audit.pub.pem", []byte(pubPEM))
	if err := openssl(t, "pkey", "-pubin", "-in", pubFile, "-noout"); err != nil {
		t.Fatal(err)
	}
	info := mustSignctl(t, d, "audit", "public-key", "-o", "json").json(t)
	if info["algorithm"] != "ecdsa-p256" || info["public_key_pem"] != pubPEM {
		t.Fatalf("audit public-key -o json: %v", info)
	}
	id, err := hex.DecodeString(info["cka_id"].(string))
	if err != nil || len(id) == 0 {
		t.Fatalf("audit key CKA_ID %v", info["cka_id"])
	}
	sensitive, extractable, private, token := d.tok.PrivateKeyAttributes(t, id)
	if !sensitive || extractable || !private || !token {
		t.Fatalf("audit key: sensitive=%t extractable=%t private=%t token=%t", sensitive, extractable, private, token)
	}
	if err := d.tok.ReadPrivateValue(t, id); err == nil {
		t.Fatal("the token released the audit key's CKA_VALUE")
	}
	if r := signctl(t, d, "sign", pkg, "--key", "signerd-audit", "--out", filepath.Join(dir, "x.sig")); r.code != 2 || !strings.Contains(r.stderr, "reserved") {
		t.Fatalf("sign with the audit key: exit %d %s", r.code, r.stderr)
	}
	if r := signctl(t, d, "key", "create", "signerd-audit", "--algorithm", "ecdsa-p256"); r.code != 2 || !strings.Contains(r.stderr, "reserved") {
		t.Fatalf("key create signerd-audit: exit %d %s", r.code, r.stderr)
	}
	if r := mustSignctl(t, d, "key", "list"); strings.Contains(r.stdout, "signerd-audit") {
		t.Fatalf("key list shows the audit key:\n%s", r.stdout)
	}

	// audit list: every operation, chained.
	recs := auditList(t, d)
	var ops []string
	for i, r := range recs {
		if r.Seq != uint64(i+1) {
			t.Fatalf("record %d has seq %d", i+1, r.Seq)
		}
		if i > 0 && r.PrevHash != recs[i-1].Hash {
			t.Fatalf("record %d does not link to %d", r.Seq, r.Seq-1)
		}
		ops = append(ops, r.Operation+"/"+r.Outcome)
	}
	// At its first start signerd records the token it uses, its audit key,
	// its log key, the state its first checkpoint vouches for, and the
	// start itself (with the authorization in force).
	start := []string{"hsm.token.record/ok", "audit.key.create/ok", "log.key.create/ok", "audit.state.baseline/ok", "daemon.start/ok"}
	want := append(start, "key.create/ok", "trust.add/ok", "sign/ok", "verify/ok", "verify/UNKNOWN_ORG")
	if strings.Join(ops, " ") != strings.Join(want, " ") {
		// A verify that passes may not be audited; require the rest in order.
		want = append(start, "key.create/ok", "trust.add/ok", "sign/ok")
		if len(ops) < len(want) || strings.Join(ops[:len(want)], " ") != strings.Join(want, " ") {
			t.Fatalf("audit operations %v", ops)
		}
	}
	sign := recs[len(start)+2]
	content, _ := os.ReadFile(pkg)
	sum := sha256.Sum256(content)
	if sign.Caller != "uid:0" || sign.Digest != hex.EncodeToString(sum[:]) || !strings.HasPrefix(sign.Key, "release") || sign.Time == "" {
		t.Fatalf("sign record %+v", sign)
	}
	var since []auditRecord
	if err := json.Unmarshal([]byte(mustSignctl(t, d, "audit", "list", "--since", "2", "-o", "json").stdout), &since); err != nil || len(since) != len(recs)-2 || since[0].Seq != 3 {
		t.Fatalf("audit list --since 2: %d records, %v", len(since), err)
	}
	if r := mustSignctl(t, d, "audit", "list"); !strings.Contains(r.stdout, "SEQ") || !strings.Contains(r.stdout, "audit.key.create") {
		t.Fatalf("audit list text:\n%s", r.stdout)
	}

	// Online verification; the 1s checkpointer catches up with the head.
	if r := mustSignctl(t, d, "audit", "verify"); !strings.HasPrefix(r.stdout, "OK: audit log intact") {
		t.Fatalf("audit verify: %s", r.stdout)
	}
	head := uint64(len(recs))
	waitFor(t, "a periodic checkpoint at the head", 10*time.Second, func() bool {
		v := mustSignctl(t, d, "audit", "verify", "-o", "json").json(t)
		cp, ok := v["latest_checkpoint"].(map[string]any)
		return v["intact"] == true && ok && uint64(cp["seq"].(float64)) == head
	})

	// The log's note verifier key, kept by the operator as the audit key
	// is, checks the notes offline.
	vkey := writeFile(t, dir, "log.vkey", []byte(mustSignctl(t, d, "log", "public-key").stdout))

	// More records, then SIGTERM: the final checkpoint covers them.
	mustSignctl(t, d, "sign", writeFile(t, dir, "b.so", []byte("package b")), "--key", "release")
	var keys []map[string]any
	if err := json.Unmarshal([]byte(mustSignctl(t, d, "key", "list", "-o", "json").stdout), &keys); err != nil || len(keys) != 1 {
		t.Fatalf("key list: %v %v", keys, err)
	}
	mustSignctl(t, d, "trust", "remove", "--org", "acme", "--fingerprint", keys[0]["fingerprint"].(string))
	head = uint64(len(auditList(t, d)))
	if err := d.stop(t); err != nil {
		t.Fatalf("SIGTERM: %v\n%s", err, d.logs.String())
	}
	if !strings.Contains(d.logs.String(), fmt.Sprintf(`"final audit checkpoint" seq=%d written=true`, head)) {
		t.Fatalf("no final checkpoint at seq %d in the logs:\n%s", head, d.logs.String())
	}
	golden := filepath.Join(dir, "golden.db")
	auditCopy(t, d.db, golden)
	cps := auditCheckpointSeqs(t, golden)
	if len(cps) < 2 || cps[len(cps)-1] != head {
		t.Fatalf("checkpoints at %v, want a periodic one and the final one at %d", cps, head)
	}

	// The untouched copy verifies offline, and verification leaves the
	// file byte for byte as it was.
	before, _ := os.ReadFile(golden)
	st0, _ := os.Stat(golden)
	r := mustSignctl(t, nil, "audit", "verify", "--db", golden, "--audit-key", pubFile)
	if !strings.Contains(r.stdout, "OK: audit log intact") || !strings.Contains(r.stdout, fmt.Sprintf("newest at record %d", head)) {
		t.Fatalf("offline verify of the untouched copy:\n%s", r.stdout)
	}
	v := mustSignctl(t, nil, "audit", "verify", "--db", golden, "--audit-key", pubFile, "-o", "json").json(t)
	if v["intact"] != true || v["mode"] != "offline" || uint64(v["head_seq"].(float64)) != head || v["audit_key_fingerprint"] != info["fingerprint"] {
		t.Fatalf("offline verify -o json: %v", v)
	}
	// With the log key, every checkpoint's note signature is checked too.
	v = mustSignctl(t, nil, "audit", "verify", "--db", golden, "--audit-key", pubFile, "--log-key", vkey, "-o", "json").json(t)
	if v["intact"] != true || v["notes_checked"] != float64(len(cps)) || v["checkpoints_without_note"] != float64(0) || v["log_key"] == "" {
		t.Fatalf("offline verify --log-key: want intact and %d notes checked: %v", len(cps), v)
	}
	if r := mustSignctl(t, nil, "audit", "verify", "--db", golden, "--audit-key", pubFile, "--log-key", vkey); !strings.Contains(r.stdout, fmt.Sprintf("%d checkpoint notes signed by log key", len(cps))) {
		t.Fatalf("offline verify --log-key, text:\n%s", r.stdout)
	}
	after, _ := os.ReadFile(golden)
	st1, _ := os.Stat(golden)
	if !bytes.Equal(before, after) || !st0.ModTime().Equal(st1.ModTime()) {
		t.Fatal("offline verification modified the database file")
	}

	// Each tamper on a fresh copy: exit 1, naming the first bad record.
	last := head
	for _, tt := range []struct {
		name    string
		tamper  func(*bolt.Tx) error
		seq     uint64
		kind    string
		message string
	}{
		{"edit one record's field", auditEdit(4), 4, store.ChainEdited, ""},
		{"delete one record", auditDelete(3), 3, store.ChainDeleted, ""},
		{"insert one record", auditInsert(3, last), 3, store.ChainInserted, ""},
		{"swap two records", auditSwap(2, 3), 2, store.ChainReordered, ""},
		{"truncate the tail below the last checkpoint", auditTruncate(last-2, last), last - 1, store.ChainDeleted, "were removed"},
		{"forge the last checkpoint", auditForgeCheckpoint(last), last, store.ChainBadCheckpoint, ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			path := tamperedCopy(t, golden, tt.tamper)
			r := signctl(t, nil, "audit", "verify", "--db", path, "--audit-key", pubFile)
			if r.code != 1 || !strings.Contains(r.stdout, fmt.Sprintf("BROKEN: audit log record %d: %s:", tt.seq, tt.kind)) || !strings.Contains(r.stdout, tt.message) {
				t.Fatalf("exit %d, want 1 naming record %d (%s)\nstdout: %s\nstderr: %s", r.code, tt.seq, tt.kind, r.stdout, r.stderr)
			}
			r = signctl(t, nil, "audit", "verify", "--db", path, "--audit-key", pubFile, "-o", "json")
			p, _ := r.json(t)["problem"].(map[string]any)
			if r.code != 1 || p == nil || uint64(p["seq"].(float64)) != tt.seq || p["kind"] != tt.kind {
				t.Fatalf("-o json: exit %d %s", r.code, r.stdout)
			}
		})
	}

	// A note re-signed by another key of the log's name (its tree size,
	// root and state line unchanged, so only its signature is wrong):
	// only the log key finds it, as a note of another key (the operator's
	// wrong key looks the same, and the message says to check it).
	t.Run("forge the last checkpoint's note", func(t *testing.T) {
		path := tamperedCopy(t, golden, auditForgeNote(last))
		if r := signctl(t, nil, "audit", "verify", "--db", path, "--audit-key", pubFile); r.code != 0 {
			t.Fatalf("without --log-key: exit %d, want 0 (the note's root and size are the tree's)\n%s%s", r.code, r.stdout, r.stderr)
		}
		r := signctl(t, nil, "audit", "verify", "--db", path, "--audit-key", pubFile, "--log-key", vkey)
		if want := fmt.Sprintf("BROKEN: audit log record %d: %s: the note of the checkpoint at %d is not signed by the log key given", last, store.ChainWrongCheckpointKey, last); r.code != 1 || !strings.Contains(r.stdout, want) {
			t.Fatalf("with --log-key: exit %d, want 1 and %q\n%s%s", r.code, want, r.stdout, r.stderr)
		}
	})

	// A note removed: not damage (a signerd whose HSM has no log key
	// writes none), but --log-key counts it and says so.
	t.Run("remove the last checkpoint's note", func(t *testing.T) {
		path := tamperedCopy(t, golden, auditEditCheckpoint(last, func(c *store.Checkpoint) error {
			c.Note = nil
			return nil
		}))
		r := mustSignctl(t, nil, "audit", "verify", "--db", path, "--audit-key", pubFile, "--log-key", vkey)
		if !strings.Contains(r.stdout, "1 checkpoint without a note") {
			t.Fatalf("want the missing note counted:\n%s", r.stdout)
		}
		v := mustSignctl(t, nil, "audit", "verify", "--db", path, "--audit-key", pubFile, "--log-key", vkey, "-o", "json").json(t)
		if v["checkpoints_without_note"] != float64(1) || v["notes_checked"] != float64(len(cps)-1) {
			t.Fatalf("-o json: %v", v)
		}
	})

	// Another key is not the audit key.
	other, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	der, _ := x509.MarshalPKIXPublicKey(&other.PublicKey)
	otherPEM := writeFile(t, dir, "other.pub.pem", pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}))
	if r := signctl(t, nil, "audit", "verify", "--db", golden, "--audit-key", otherPEM); r.code != 1 || !strings.Contains(r.stdout, store.ChainWrongCheckpointKey) {
		t.Fatalf("verify with another key: exit %d %s", r.code, r.stdout)
	}

	// Bad input is exit 2; no daemon is exit 3.
	for name, args := range map[string][]string{
		"missing db":       {"--db", filepath.Join(dir, "nope.db"), "--audit-key", pubFile},
		"not a database":   {"--db", pubFile, "--audit-key", pubFile},
		"missing key file": {"--db", golden, "--audit-key", filepath.Join(dir, "nope.pem")},
		"key not a PEM":    {"--db", golden, "--audit-key", golden},
		"db without key":   {"--db", golden},
		"log key online":   {"--log-key", vkey},
		"log key garbage":  {"--db", golden, "--audit-key", pubFile, "--log-key", "not+a+key"},
	} {
		if r := signctl(t, nil, append([]string{"audit", "verify"}, args...)...); r.code != 2 {
			t.Errorf("%s: exit %d, want 2\n%s", name, r.code, r.stderr)
		}
	}
	if r := signctl(t, nil, "audit", "verify"); r.code != 3 {
		t.Fatalf("online verify with no daemon: exit %d, want 3\n%s", r.code, r.stderr)
	}

	// Online, the daemon finds the same damage in its own database. Here
	// the log looks like a crash (no final checkpoint) followed by an edit
	// of a record the newest checkpoint does not cover yet.
	path := filepath.Join(dir, "edited.db")
	auditCopy(t, golden, path)
	db, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Update(func(tx *bolt.Tx) error {
		if err := auditBucket(tx, "checkpoints").Delete(auditKey(last)); err != nil {
			return err
		}
		return auditEdit(last)(tx)
	}); err != nil {
		t.Fatal(err)
	}
	db.Close()
	auditCopy(t, path, d.db)
	d.start(t, "--audit-checkpoint-interval", "1s")
	if r := signctl(t, d, "audit", "verify"); r.code != 1 || !strings.Contains(r.stdout, fmt.Sprintf("BROKEN: audit log record %d: edited:", last)) {
		t.Fatalf("online verify of an edited log: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	// ... and refuses to sign a checkpoint that would vouch for it.
	mustSignctl(t, d, "key", "create", "more", "--algorithm", "ed25519")
	waitFor(t, "a refused checkpoint", 10*time.Second, func() bool {
		return strings.Contains(d.logs.String(), "not signing a checkpoint over it")
	})
}

// auditRecord is signctl audit list -o json's shape.
type auditRecord struct {
	Seq       uint64 `json:"seq"`
	Time      string `json:"time"`
	Caller    string `json:"caller"`
	Operation string `json:"operation"`
	Key       string `json:"key"`
	Org       string `json:"org"`
	Digest    string `json:"digest"`
	Outcome   string `json:"outcome"`
	Detail    string `json:"detail"`
	PrevHash  string `json:"prev_hash"`
	Hash      string `json:"hash"`
}

func auditList(t *testing.T, d *daemon) []auditRecord {
	t.Helper()
	var recs []auditRecord
	if err := json.Unmarshal([]byte(mustSignctl(t, d, "audit", "list", "-o", "json").stdout), &recs); err != nil {
		t.Fatal(err)
	}
	return recs
}

func waitFor(t *testing.T, what string, limit time.Duration, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(limit); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		if cond() {
			return
		}
	}
	t.Fatalf("timed out waiting for %s", what)
}

func auditCopy(t *testing.T, from, to string) {
	t.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

// Direct bbolt edits, by the on-disk schema documented in
// internal/store/boltstore/doc.go: v1/audit holds uint64be(seq) → JSON
// record, v1/meta/audit_head the head, v1/checkpoints the checkpoints.

func auditKey(n uint64) []byte { return binary.BigEndian.AppendUint64(nil, n) }

func auditBucket(tx *bolt.Tx, name string) *bolt.Bucket {
	return tx.Bucket([]byte("v1")).Bucket([]byte(name))
}

func auditGet(tx *bolt.Tx, n uint64) store.AuditRecord {
	var r store.AuditRecord
	if err := json.Unmarshal(auditBucket(tx, "audit").Get(auditKey(n)), &r); err != nil {
		panic(fmt.Sprintf("record %d: %v", n, err))
	}
	return r
}

func auditPut(tx *bolt.Tx, n uint64, r store.AuditRecord) error {
	raw, err := json.Marshal(r)
	if err != nil {
		return err
	}
	return auditBucket(tx, "audit").Put(auditKey(n), raw)
}

func auditEdit(n uint64) func(*bolt.Tx) error {
	return func(tx *bolt.Tx) error {
		r := auditGet(tx, n)
		r.Caller = "uid:4242"
		return auditPut(tx, n, r)
	}
}

func auditDelete(n uint64) func(*bolt.Tx) error {
	return func(tx *bolt.Tx) error { return auditBucket(tx, "audit").Delete(auditKey(n)) }
}

func auditSwap(a, b uint64) func(*bolt.Tx) error {
	return func(tx *bolt.Tx) error {
		ra, rb := auditGet(tx, a), auditGet(tx, b)
		if err := auditPut(tx, a, rb); err != nil {
			return err
		}
		return auditPut(tx, b, ra)
	}
}

// auditInsert shifts records n..last up and puts at n a forged record that
// links to n-1 and hashes correctly.
func auditInsert(n, last uint64) func(*bolt.Tx) error {
	return func(tx *bolt.Tx) error {
		for k := last; k >= n; k-- {
			if err := auditPut(tx, k+1, auditGet(tx, k)); err != nil {
				return err
			}
		}
		f := auditGet(tx, n)
		f.Operation, f.Detail = "sign", "forged"
		f.Hash = store.HashAuditRecord(f)
		return auditPut(tx, n, f)
	}
}

// auditTruncate removes the records after keep and moves the head back to
// keep, so that the chain alone looks intact: only the checkpoint shows it.
func auditTruncate(keep, last uint64) func(*bolt.Tx) error {
	return func(tx *bolt.Tx) error {
		for k := keep + 1; k <= last; k++ {
			if err := auditBucket(tx, "audit").Delete(auditKey(k)); err != nil {
				return err
			}
		}
		return auditBucket(tx, "meta").Put([]byte("audit_head"), append(auditKey(keep), auditGet(tx, keep).Hash...))
	}
}

// auditForgeCheckpoint alters the checkpoint at n (its time).
func auditForgeCheckpoint(n uint64) func(*bolt.Tx) error {
	return auditEditCheckpoint(n, func(c *store.Checkpoint) error {
		c.Time = c.Time.Add(time.Hour)
		return nil
	})
}

// auditForgeNote replaces the note of the checkpoint at n with the same
// text signed by a new Ed25519 key of the same name.
func auditForgeNote(n uint64) func(*bolt.Tx) error {
	return auditEditCheckpoint(n, func(c *store.Checkpoint) error {
		text, sigs, ok := bytes.Cut(c.Note, []byte("\n\n"))
		if !ok {
			return fmt.Errorf("checkpoint %d has no signed note: %q", n, c.Note)
		}
		name, _, _ := strings.Cut(strings.TrimPrefix(string(sigs), "\u2014 "), " ")
		skey, _, err := note.GenerateKey(rand.Reader, name)
		if err != nil {
			return err
		}
		signer, err := note.NewSigner(skey)
		if err != nil {
			return err
		}
		c.Note, err = note.Sign(&note.Note{Text: string(text) + "\n"}, signer)
		return err
	})
}

// auditEditCheckpoint rewrites the checkpoint at n as edit changes it.
func auditEditCheckpoint(n uint64, edit func(*store.Checkpoint) error) func(*bolt.Tx) error {
	return func(tx *bolt.Tx) error {
		var c store.Checkpoint
		if err := json.Unmarshal(auditBucket(tx, "checkpoints").Get(auditKey(n)), &c); err != nil {
			return err
		}
		if err := edit(&c); err != nil {
			return err
		}
		raw, err := json.Marshal(c)
		if err != nil {
			return err
		}
		return auditBucket(tx, "checkpoints").Put(auditKey(n), raw)
	}
}

// tamperedCopy copies the closed database golden into a fresh file,
// applies tamper to it with bbolt directly and returns its path.
func tamperedCopy(t *testing.T, golden string, tamper func(*bolt.Tx) error) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "copy.db")
	auditCopy(t, golden, path)
	db, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if err := db.Update(tamper); err != nil {
		t.Fatal(err)
	}
	return path
}

// auditCheckpointSeqs reads the checkpoints' seqs from a closed database.
func auditCheckpointSeqs(t *testing.T, path string) []uint64 {
	t.Helper()
	db, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var seqs []uint64
	if err := db.View(func(tx *bolt.Tx) error {
		return auditBucket(tx, "checkpoints").ForEach(func(k, _ []byte) error {
			seqs = append(seqs, binary.BigEndian.Uint64(k))
			return nil
		})
	}); err != nil {
		t.Fatal(err)
	}
	return seqs
}
