package boltstore

import (
	"bytes"
	"context"
	"encoding/json"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/signerd/signerd/internal/store"
)

// storedValue returns the raw value at key in the named bucket.
func storedValue(t *testing.T, s *Store, name, key []byte) []byte {
	t.Helper()
	var raw []byte
	err := s.db.View(func(tx *bolt.Tx) error {
		b, err := bucket(tx, name)
		if err != nil {
			return err
		}
		raw = bytes.Clone(b.Get(key))
		return nil
	})
	if err != nil || raw == nil {
		t.Fatalf("no value at %x in %s: %v", key, name, err)
	}
	return raw
}

// TestStoredRecordsAreJSONMarshal holds the hand-written record encoders
// (store.AppendSignatureRecordJSON, store.AppendAuditRecordJSON) to the
// promise the files rely on: what PutSignature and AppendAudit store is
// exactly json.Marshal of the record, as it was before those encoders, so
// files written before and after them cannot be told apart.
func TestStoredRecordsAreJSONMarshal(t *testing.T) {
	ctx := context.Background()
	s := openTemp(t)
	for i, name := range []string{"release", "<rel&ase>\u2028\t\"\\", "relé\x7f"} {
		digest := bytes.Repeat([]byte{byte(i + 1)}, store.DigestSize)
		rec := store.SignatureRecord{
			Digest: digest, Format: store.FormatSchemaPin, KeyName: name, KeyVersion: uint32(i + 7),
			Fingerprint: "3f1d", Algorithm: "ecdsa-p256", Signature: bytes.Repeat([]byte{0xfb, byte(i)}, 35),
			// The caller's zone and monotonic reading: stored as given.
			SignedAt:     time.Now().In(time.FixedZone("", -(3*3600 + 1800))),
			ArtifactName: name + ".tar.gz", Caller: "uid:1000",
			Document: []byte(`{"signature":"<x>"}`),
		}
		ev := store.AuditEvent{Caller: "uid:1000", Operation: "sign", Key: name + "@v1", Outcome: "ok", Detail: "artifact=" + name}
		if err := s.PutSignature(ctx, rec, ev); err != nil {
			t.Fatal(err)
		}
		if err := s.Sync(ctx); err != nil { // into bbolt, where storedValue reads
			t.Fatal(err)
		}
		seq, _, err := s.AuditHead(ctx)
		if err != nil {
			t.Fatal(err)
		}
		want, err := json.Marshal(rec)
		if err != nil {
			t.Fatal(err)
		}
		if got := storedValue(t, s, bucketKeySigRecords, seqKey(seq)); !bytes.Equal(got, want) {
			t.Errorf("stored signature record\n%s\njson.Marshal\n%s", got, want)
		}
		// Every string here is valid UTF-8, so the record survives
		// json.Unmarshal unchanged and can be marshalled again.
		logged, err := s.ListAudit(ctx, seq-1, 1)
		if err != nil || len(logged) != 1 {
			t.Fatalf("ListAudit: %v, %v", logged, err)
		}
		if want, err = json.Marshal(logged[0]); err != nil {
			t.Fatal(err)
		}
		if got := storedValue(t, s, bucketKeyAudit, seqKey(seq)); !bytes.Equal(got, want) {
			t.Errorf("stored audit record\n%s\njson.Marshal\n%s", got, want)
		}
	}
	// AppendAudit returns the record as encoded: invalid UTF-8 included,
	// which json.Marshal writes as \ufffd.
	rec, err := s.AppendAudit(ctx, store.AuditEvent{
		Caller: "uid:\xff", Operation: "verify", Org: "<acme>", Outcome: "denied", Detail: "bad \xe2\x80 input\u2029",
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	want, err := json.Marshal(rec)
	if err != nil {
		t.Fatal(err)
	}
	if got := storedValue(t, s, bucketKeyAudit, seqKey(rec.Seq)); !bytes.Equal(got, want) {
		t.Errorf("stored audit record\n%s\njson.Marshal\n%s", got, want)
	}
}
