package store

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"time"

	"github.com/signerd/signerd/internal/errdefs"
)

// AuditHashSize is the length of AuditRecord.Hash and AuditRecord.PrevHash.
const AuditHashSize = sha256.Size

// auditEncodingTag is the first field of the canonical encoding. It names the
// encoding so that a future change is a new tag, never a silent reinterpretation
// of old records.
const (
	auditEncodingTag   = "signerd-audit-v1"
	auditEncodingTagV2 = "signerd-audit-v2"
)

// GenesisHash returns the PrevHash of the first audit record (Seq 1): 32
// zero bytes. It returns a fresh slice each time so callers may keep it.
func GenesisHash() []byte { return make([]byte, AuditHashSize) }

// HashAuditRecord returns the SHA-256 of the canonical encoding of r
// (EncodeAuditRecord). r.Hash is not part of the encoding, so the result is
// what r.Hash must be.
//
// Example: Seq 1, PrevHash 32 zero bytes, Time 2025-01-02T03:04:05.000000006Z,
// Caller "uid:0", Operation "key.create", Key "k", Org "", Digest "",
// Outcome "ok", Detail "" hashes to
// d9570b9415139314117736826ff1af62cec2ea37fd872af0b206e8a4d4d759d6
// (TestHashAuditRecordKnownAnswer pins this value, which was computed with
// an independent implementation in Python's hashlib).
func HashAuditRecord(r AuditRecord) []byte {
	sum := sha256.Sum256(EncodeAuditRecord(r))
	return sum[:]
}

// EncodeAuditRecord returns the canonical encoding of r: the bytes
// HashAuditRecord hashes and the transparency log's leaf (tree.go).
//
// The canonical encoding (version 1) is the concatenation, in this order, of
//
//	field("signerd-audit-v1")
//	uint64be(Seq)
//	field(PrevHash)
//	field(Time.UTC().Format(time.RFC3339Nano))
//	field(Caller)
//	field(Operation)
//	field(Key)
//	field(Org)
//	field(Digest)
//	field(Outcome)
//	field(Detail)
//
// where uint64be(n) is n as 8 big-endian bytes, field(b) is len(b) as 4
// big-endian bytes followed by b itself, and strings contribute their bytes
// exactly as stored (no Unicode or case normalisation). The time layout is Go's
// RFC3339Nano in UTC: "2006-01-02T15:04:05.999999999Z", trailing zeros of the
// fraction removed and the fraction omitted when zero. Every variable-length
// field carries its length, so no two different records share an encoding
// (unlike a separator-joined or JSON encoding, which depends on escaping and
// field order).
//
// A record that carries signature bytes (AuditEvent.Signature: the record
// of a signature handed out) is version 2: the tag is "signerd-audit-v2"
// and field(Signature) follows field(Detail). Records without a signature
// keep the version 1 encoding, so every record written before version 2
// existed hashes as it did and old chains and checkpoints still verify;
// stripping the signature from a version 2 record changes its tag and so
// its hash.
func EncodeAuditRecord(r AuditRecord) []byte {
	tag := auditEncodingTag
	if len(r.Signature) > 0 {
		tag = auditEncodingTagV2
	}
	ts := r.Time.UTC().Format(time.RFC3339Nano)
	n := 8 + 4*12 + len(tag) + len(r.PrevHash) + len(ts) + len(r.Caller) + len(r.Operation) +
		len(r.Key) + len(r.Org) + len(r.Digest) + len(r.Outcome) + len(r.Detail) + len(r.Signature)
	b := make([]byte, 0, n)
	field := func(f []byte) {
		b = binary.BigEndian.AppendUint32(b, uint32(len(f)))
		b = append(b, f...)
	}
	field([]byte(tag))
	b = binary.BigEndian.AppendUint64(b, r.Seq)
	field(r.PrevHash)
	field([]byte(ts))
	field([]byte(r.Caller))
	field([]byte(r.Operation))
	field([]byte(r.Key))
	field([]byte(r.Org))
	field([]byte(r.Digest))
	field([]byte(r.Outcome))
	field([]byte(r.Detail))
	if len(r.Signature) > 0 {
		field(r.Signature)
	}
	return b
}

// Kinds of audit chain damage reported in ChainError.Kind.
const (
	// ChainEdited: a record's content no longer matches its own hash.
	ChainEdited = "edited"
	// ChainInserted: a record that does not belong in the chain (a second
	// record with an already used seq, or one past the recorded head).
	ChainInserted = "inserted"
	// ChainDeleted: one or more sequence numbers are missing (including a
	// truncated tail).
	ChainDeleted = "deleted"
	// ChainReordered: records are present but out of sequence order.
	ChainReordered = "reordered"
	// ChainBrokenLink: a record is intact but its PrevHash is not the
	// previous record's hash (typically the previous record was edited and
	// re-hashed).
	ChainBrokenLink = "broken link"
	// ChainBadCheckpoint: a signed checkpoint (store.Checkpoint) is
	// unreadable or its signature does not verify with the audit key.
	// ChainError.Seq is the checkpoint's seq.
	ChainBadCheckpoint = "bad checkpoint signature"
	// ChainWrongCheckpointKey: a checkpoint names a key other than the
	// audit key it is checked against (a forged checkpoint, a replaced
	// audit key, or the wrong public key given to an offline check).
	ChainWrongCheckpointKey = "wrong checkpoint key"
	// ChainDamagedFile: the database file itself is damaged (truncated,
	// a damaged meta or data page) below the level of records. Seq is the
	// first audit record that could not be read, 0 if every record could.
	ChainDamagedFile = "damaged file"
	// ChainStateUnexplained: the security state (trust, grants, policy,
	// key states) is not the one the newest checkpoint vouches for, and no
	// audit record since changes it: it was written behind the daemon's
	// back. Seq is that checkpoint's seq (or the record that began vouching
	// for the state, if the checkpoints after it are gone).
	ChainStateUnexplained = "state unexplained"
	// ChainTreeMismatch: the Merkle tree the store keeps (tree.go) is not
	// the tree of its records, so the roots and proofs it serves would be
	// wrong (a node or the tree head was edited, or records were rewritten
	// without the tree). Seq is the first record under the first node that
	// differs.
	ChainTreeMismatch = "tree mismatch"
	// ChainTreeRewritten: a signed checkpoint note names a root for its
	// tree size that is not the log's root of that size: two checkpoints
	// of one size with different roots, so the log was rewritten after
	// the note was signed (or the note was forged). Seq is the note's size.
	ChainTreeRewritten = "rewritten tree"
)

// ChainError reports the first place where an audit chain fails
// verification.
//
// Seq names the chain position where verification failed: for "edited",
// "broken link" and "inserted" the seq of the offending record; for
// "deleted" the first missing seq; for "reordered" the seq that was expected
// at that position (it appears later).
type ChainError struct {
	Seq     uint64
	Kind    string
	Message string
}

// Error names the seq and kind, then explains.
func (e *ChainError) Error() string {
	return fmt.Sprintf("audit chain broken at seq %d (%s): %s", e.Seq, e.Kind, e.Message)
}

// Unwrap makes a broken chain errors.Is(err, errdefs.ErrFailedPrecondition):
// the log no longer satisfies the invariant every reader relies on. (gRPC's
// DATA_LOSS would fit better; errdefs has no such kind yet.)
func (e *ChainError) Unwrap() error { return errdefs.ErrFailedPrecondition }

// VerifyAuditChain checks that records continue a chain whose last record
// has sequence number prevSeq and hash prevHash (prevSeq 0 with a nil or
// zero prevHash for the start of the log). It checks, record by record and
// in this order, that sequence numbers are consecutive, that PrevHash links
// to the previous record's Hash, and that each Hash recomputes with
// HashAuditRecord. It returns nil or a *ChainError for the first bad record,
// classified as well as the records allow:
//
//   - a seq larger than expected: "reordered" if the expected seq appears
//     later in records, "edited" if the record's own hash does not
//     recompute (its seq field was changed), else "deleted";
//   - a seq smaller than expected (already used): "inserted" if the record
//     hashes correctly, else "edited";
//   - the expected seq but a PrevHash that does not link: "edited" if the
//     record's hash does not recompute; "inserted" if it does and the seq is
//     claimed again later or the next record links over it; else
//     "broken link";
//   - a hash that does not recompute: "edited".
func VerifyAuditChain(records []AuditRecord, prevHash []byte, prevSeq uint64) error {
	last := prevHash
	if prevSeq == 0 && len(last) == 0 {
		last = GenesisHash()
	}
	lastSeq := prevSeq
	for i, r := range records {
		want := lastSeq + 1
		hashOK := bytes.Equal(HashAuditRecord(r), r.Hash)
		rest := records[i+1:]
		switch {
		case r.Seq > want:
			if seqIn(rest, want) {
				return &ChainError{Seq: want, Kind: ChainReordered,
					Message: fmt.Sprintf("found seq %d where %d was expected; %d appears later", r.Seq, want, want)}
			}
			if !hashOK {
				return &ChainError{Seq: want, Kind: ChainEdited,
					Message: fmt.Sprintf("record at position %d claims seq %d and its hash does not recompute", want, r.Seq)}
			}
			msg := fmt.Sprintf("record %d is missing", want)
			if r.Seq > want+1 {
				msg = fmt.Sprintf("records %d to %d are missing", want, r.Seq-1)
			}
			return &ChainError{Seq: want, Kind: ChainDeleted, Message: msg}
		case r.Seq < want:
			if !hashOK {
				return &ChainError{Seq: want, Kind: ChainEdited,
					Message: fmt.Sprintf("record at position %d claims seq %d and its hash does not recompute", want, r.Seq)}
			}
			return &ChainError{Seq: r.Seq, Kind: ChainInserted,
				Message: fmt.Sprintf("a second record claims seq %d (found where %d was expected)", r.Seq, want)}
		case !bytes.Equal(r.PrevHash, last):
			switch {
			case !hashOK:
				return &ChainError{Seq: r.Seq, Kind: ChainEdited,
					Message: "prev_hash does not link and the record's hash does not recompute"}
			case seqIn(rest, r.Seq) || (len(rest) > 0 && bytes.Equal(rest[0].PrevHash, last)):
				return &ChainError{Seq: r.Seq, Kind: ChainInserted,
					Message: fmt.Sprintf("record %d does not link to record %d and the chain continues without it", r.Seq, lastSeq)}
			default:
				return &ChainError{Seq: r.Seq, Kind: ChainBrokenLink,
					Message: fmt.Sprintf("prev_hash is not the hash of record %d (record %d was edited and re-hashed, or %d replaced)", lastSeq, lastSeq, r.Seq)}
			}
		case !hashOK:
			return &ChainError{Seq: r.Seq, Kind: ChainEdited, Message: "hash does not recompute"}
		}
		last, lastSeq = r.Hash, r.Seq
	}
	return nil
}

func seqIn(records []AuditRecord, seq uint64) bool {
	for _, r := range records {
		if r.Seq == seq {
			return true
		}
	}
	return false
}
