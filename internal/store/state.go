package store

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"sort"
	"time"

	"github.com/signerd/signerd/internal/errdefs"
)

// The security state: everything that decides what verifies and who may
// sign, which audit checkpoints vouch for (internal/auditlog). A checkpoint
// signs its digest next to the audit head, so a state written into the
// database behind the daemon's back (an attacker's key added to an org) is a
// state no checkpoint and no audit record explains.

// stateEncodingTag names the encoding; a change is a new tag.
const stateEncodingTag = "signerd-state-v1"

// Audit operations about the state itself, written by the daemon.
const (
	// OpStateBaseline: the first checkpoint that vouches for the state is
	// about to be signed over a state no earlier checkpoint covered (a
	// database from before state digests). Detail: state_digest=HEX.
	OpStateBaseline = "audit.state.baseline"
	// OpStateAccept: the operator told the daemon (--accept-state) to
	// accept a state its checkpoints do not explain. Detail names both
	// digests.
	OpStateAccept = "audit.state.accept"
	// OpJournalLoss: the operator started the daemon on a database that
	// was not closed cleanly although its journal was missing or
	// truncated (--accept-journal-loss): records acknowledged before the
	// stop may be missing before this one. Detail says what was found.
	OpJournalLoss = "audit.journal.loss"
)

// stateOps are the audit operations whose successful records change the
// security state (each in the same transaction as the change).
var stateOps = map[string]bool{
	"key.create": true, "key.import": true, "key.rotate": true, "key.revoke": true,
	"trust.add": true, "trust.remove": true, "trust.grant": true, "trust.revoke_grant": true,
	"policy.set": true, "audit.key.create": true,
	OpStateBaseline: true, OpStateAccept: true,
}

// ChangesState reports whether r records a change of the security state.
func ChangesState(r AuditRecord) bool { return r.Outcome == "ok" && stateOps[r.Operation] }

// StateReader reads the security state. store.Store and a read-only
// *boltstore.Store satisfy it.
type StateReader interface {
	ListOrgs(ctx context.Context) ([]Org, error)
	ListKeys(ctx context.Context) ([]Key, error)
	AuditKey(ctx context.Context) (Key, error)
}

// StateDigest returns SHA-256 of the canonical encoding of the security
// state r holds: every org's policy, trusted keys and grants, every key's
// versions and states, and the audit key.
//
// The encoding (version 1), with uint64be and field as in HashAuditRecord
// (field(b) = uint32be(len(b)) ‖ b) and flag(b) one byte 0 or 1:
//
//	field("signerd-state-v1")
//	uint64be(number of orgs), then per org in ascending ID order:
//	  field(ID) flag(RequireSignatures)
//	  uint64be(number of trusted keys), then per key in ascending fingerprint order:
//	    field(Fingerprint) field(Algorithm) field(PublicKey) flag(RemovedAt set)
//	  uint64be(number of grants), then per grant in ascending child order:
//	    field(Child) flag(RevokedAt set)
//	uint64be(number of keys), then per key in ascending name order:
//	  field(Name) field(Org) field(Algorithm) uint64be(number of versions),
//	  then per version in ascending version order:
//	    uint64be(Version) field(CKAID) field(PublicKey) field(Fingerprint)
//	    field(State) field(RevocationReason) field(RevokedAt RFC 3339 nano UTC, or "")
//	then uint64be(0) if there is no audit key, else uint64be(1) and the
//	audit key encoded as one key above
//
// Times that decide nothing (when a key was trusted, an org last changed)
// are left out; a revocation time is in, since superseded keys keep the
// signatures recorded before it. Examples (TestStateDigestKnownAnswer pins
// both; computed with Python's hashlib): an empty state hashes to
// 3363164a3396062c778745d6e26495a18a2a9d7ceef677440925d9c27accb9ee; one org
// "acme" requiring signatures, trusting fingerprint "ab" (algorithm
// "ed25519", public key 01 02) and with a revoked grant to "c", no keys and
// no audit key, to
// 6c1367a7fe3641c393863287aed2f6a12116493770b15a22d33c3b08cbd89b49.
func StateDigest(ctx context.Context, r StateReader) ([]byte, error) {
	orgs, err := r.ListOrgs(ctx)
	if err != nil {
		return nil, err
	}
	keys, err := r.ListKeys(ctx)
	if err != nil {
		return nil, err
	}
	var auditKey *Key
	switch k, err := r.AuditKey(ctx); {
	case err == nil:
		auditKey = &k
	case !errors.Is(err, errdefs.ErrNotFound):
		return nil, err
	}
	return EncodeState(orgs, keys, auditKey), nil
}

// EncodeState returns the digest StateDigest describes for these values; it
// sorts copies and leaves its arguments alone.
func EncodeState(orgs []Org, keys []Key, auditKey *Key) []byte {
	h := sha256.New()
	var b []byte
	flush := func() { h.Write(b); b = b[:0] }
	field := func(f []byte) {
		b = binary.BigEndian.AppendUint32(b, uint32(len(f)))
		b = append(b, f...)
	}
	num := func(n uint64) { b = binary.BigEndian.AppendUint64(b, n) }
	flag := func(v bool) {
		if v {
			b = append(b, 1)
		} else {
			b = append(b, 0)
		}
	}
	key := func(k Key) {
		field([]byte(k.Name))
		field([]byte(k.Org))
		field([]byte(k.Algorithm))
		vs := append([]KeyVersion(nil), k.Versions...)
		sort.Slice(vs, func(i, j int) bool { return vs[i].Version < vs[j].Version })
		num(uint64(len(vs)))
		for _, v := range vs {
			num(uint64(v.Version))
			field(v.CKAID)
			field(v.PublicKey)
			field([]byte(v.Fingerprint))
			field([]byte(v.State))
			field([]byte(v.RevocationReason))
			at := ""
			if v.RevokedAt != nil {
				at = v.RevokedAt.UTC().Format(time.RFC3339Nano)
			}
			field([]byte(at))
			flush()
		}
	}

	field([]byte(stateEncodingTag))
	os := append([]Org(nil), orgs...)
	sort.Slice(os, func(i, j int) bool { return os[i].ID < os[j].ID })
	num(uint64(len(os)))
	for _, o := range os {
		field([]byte(o.ID))
		flag(o.RequireSignatures)
		tks := append([]TrustedKey(nil), o.Trusted...)
		sort.Slice(tks, func(i, j int) bool { return tks[i].Fingerprint < tks[j].Fingerprint })
		num(uint64(len(tks)))
		for _, t := range tks {
			field([]byte(t.Fingerprint))
			field([]byte(t.Algorithm))
			field(t.PublicKey)
			flag(t.RemovedAt != nil)
			flush()
		}
		gs := append([]Grant(nil), o.Grants...)
		sort.Slice(gs, func(i, j int) bool { return gs[i].Child < gs[j].Child })
		num(uint64(len(gs)))
		for _, g := range gs {
			field([]byte(g.Child))
			flag(g.RevokedAt != nil)
		}
		flush()
	}
	ks := append([]Key(nil), keys...)
	sort.Slice(ks, func(i, j int) bool { return ks[i].Name < ks[j].Name })
	num(uint64(len(ks)))
	for _, k := range ks {
		key(k)
	}
	if auditKey == nil {
		num(0)
	} else {
		num(1)
		key(*auditKey)
	}
	flush()
	return h.Sum(nil)
}
