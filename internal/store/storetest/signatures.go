package storetest

import (
	"bytes"
	"context"
	"encoding/hex"
	"fmt"
	"reflect"
	"testing"

	"github.com/signerd/signerd/internal/errdefs"
	"github.com/signerd/signerd/internal/store"
)

func sigRecord(d []byte, key string, n int) store.SignatureRecord {
	v := version(key, 1)
	return store.SignatureRecord{
		Digest:       d,
		Format:       store.FormatCloacina,
		KeyName:      key,
		KeyVersion:   1,
		Fingerprint:  v.Fingerprint,
		Algorithm:    "ed25519",
		Signature:    bytes.Repeat([]byte{byte(n)}, 64),
		SignedAt:     at(n),
		ArtifactName: fmt.Sprintf("pkg-%d.tar.gz", n),
		Caller:       "uid:1000",
		Document:     fmt.Appendf(nil, `{"version":1,"n":%d}`, n),
	}
}

func sigEvent(rec store.SignatureRecord) store.AuditEvent {
	e := ev("sign")
	e.Key = rec.KeyName
	e.Digest = hex.EncodeToString(rec.Digest)
	return e
}

func testPutSignature(t *testing.T, s store.Store) {
	ctx := context.Background()
	d1 := digest("one")
	// d1x shares all but the last byte with d1: a prefix scan must not
	// mix them up.
	d1x := bytes.Clone(d1)
	d1x[31]++
	d2 := digest("two")

	puts := []store.SignatureRecord{
		sigRecord(d1, "a", 1),
		sigRecord(d1x, "a", 2),
		sigRecord(d1, "b", 3),
		sigRecord(d2, "a", 4),
		sigRecord(d1, "a", 5), // the same key again: several per digest are kept
	}
	var evs []store.AuditEvent
	for _, rec := range puts {
		must(t, "PutSignature", s.PutSignature(ctx, rec, sigEvent(rec)))
		e := sigEvent(rec)
		e.Signature = rec.Signature // the store puts it into the record
		evs = append(evs, e)
	}
	expectAudit(t, s, 0, evs...)

	for _, c := range []struct {
		name   string
		digest []byte
		want   []store.SignatureRecord
	}{
		{"three, oldest first", d1, []store.SignatureRecord{puts[0], puts[2], puts[4]}},
		{"neighbour digest", d1x, []store.SignatureRecord{puts[1]}},
		{"one", d2, []store.SignatureRecord{puts[3]}},
		{"none", digest("none"), nil},
	} {
		got, err := s.SignaturesByDigest(ctx, c.digest)
		must(t, "SignaturesByDigest "+c.name, err)
		if len(got) == 0 && len(c.want) == 0 {
			continue
		}
		equal(t, "SignaturesByDigest "+c.name, got, c.want)
	}
	_, err := s.SignaturesByDigest(ctx, d1[:31])
	checkErr(t, "SignaturesByDigest short digest", err, errdefs.ErrInvalidArgument)

	edit := func(f func(*store.SignatureRecord)) store.SignatureRecord {
		r := sigRecord(d1, "a", 9)
		f(&r)
		return r
	}
	for _, tt := range []struct {
		name string
		rec  store.SignatureRecord
		ev   store.AuditEvent
	}{
		{name: "short digest", rec: edit(func(r *store.SignatureRecord) { r.Digest = r.Digest[:31] })},
		{name: "long digest", rec: edit(func(r *store.SignatureRecord) { r.Digest = append(bytes.Clone(r.Digest), 0) })},
		{name: "no digest", rec: edit(func(r *store.SignatureRecord) { r.Digest = nil })},
		{name: "empty key name", rec: edit(func(r *store.SignatureRecord) { r.KeyName = "" })},
		{name: "empty fingerprint", rec: edit(func(r *store.SignatureRecord) { r.Fingerprint = "" })},
		{name: "empty signature", rec: edit(func(r *store.SignatureRecord) { r.Signature = nil })},
		{name: "unknown format", rec: edit(func(r *store.SignatureRecord) { r.Format = "pgp" })},
		{name: "empty operation", rec: sigRecord(d1, "a", 9), ev: store.AuditEvent{Time: t0}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			e := tt.ev
			if reflect.DeepEqual(e, store.AuditEvent{}) {
				e = sigEvent(tt.rec)
			}
			before, err := s.SignaturesByDigest(ctx, d1)
			must(t, "SignaturesByDigest", err)
			unchanged(t, s, "PutSignature", errdefs.ErrInvalidArgument, func() error { return s.PutSignature(ctx, tt.rec, e) })
			after, err := s.SignaturesByDigest(ctx, d1)
			must(t, "SignaturesByDigest", err)
			equal(t, "signatures after a refused PutSignature", after, before)
		})
	}
}
