// Package store defines signerd's durable state and the interface its
// backends implement. The service layer sees only this package; exactly one
// backend package per database touches it: store/boltstore (one local file)
// and store/etcdstore (a cluster shared by several replicas). Optional
// interfaces a backend may add are in optional.go.
//
// Every method that changes state takes the audit event describing the
// change and appends it in the same transaction: a state change without its
// audit record, or the reverse, is never observable. A method returns only
// after the change is durable (fsync'd; on etcd, committed by the quorum).
package store

import (
	"context"
	"time"
)

// KeyState is the lifecycle state of one key version.
type KeyState string

// Key states.
const (
	KeyActive  KeyState = "active"
	KeyRevoked KeyState = "revoked"
)

// RevocationReason is one of SchemaPin's four revocation reasons.
type RevocationReason string

// Revocation reasons (SchemaPin's vocabulary).
const (
	ReasonKeyCompromise        RevocationReason = "key_compromise"
	ReasonSuperseded           RevocationReason = "superseded"
	ReasonCessationOfOperation RevocationReason = "cessation_of_operation"
	ReasonPrivilegeWithdrawn   RevocationReason = "privilege_withdrawn"
)

// Key is a named signing key and all its versions. Versions are numbered
// from 1; the newest active version signs.
type Key struct {
	Name      string    `json:"name"`
	Org       string    `json:"org,omitempty"`
	Algorithm string    `json:"algorithm"` // keystore.Algorithm value
	CreatedAt time.Time `json:"created_at"`
	// Versions in ascending version order.
	Versions []KeyVersion `json:"versions"`
}

// KeyVersion is one key pair in the HSM.
type KeyVersion struct {
	Version uint32 `json:"version"`
	// CKAID is the PKCS#11 CKA_ID of the key pair (unique in the token).
	CKAID []byte `json:"cka_id"`
	// PublicKey is the SPKI DER of the public key.
	PublicKey []byte `json:"public_key"`
	// Fingerprint is the lowercase hex SHA-256 of the raw 32-byte key for
	// Ed25519 (Cloacina) and of the SPKI DER for ECDSA (SchemaPin).
	Fingerprint      string           `json:"fingerprint"`
	State            KeyState         `json:"state"`
	CreatedAt        time.Time        `json:"created_at"`
	RevokedAt        *time.Time       `json:"revoked_at,omitempty"`
	RevocationReason RevocationReason `json:"revocation_reason,omitempty"`
}

// Current returns the newest active version, if any.
func (k Key) Current() (KeyVersion, bool) {
	for i := len(k.Versions) - 1; i >= 0; i-- {
		if k.Versions[i].State == KeyActive {
			return k.Versions[i], true
		}
	}
	return KeyVersion{}, false
}

// Version returns version v of the key.
func (k Key) Version(v uint32) (KeyVersion, bool) {
	for _, kv := range k.Versions {
		if kv.Version == v {
			return kv, true
		}
	}
	return KeyVersion{}, false
}

// TrustedKey is a public key an org trusts, by fingerprint.
type TrustedKey struct {
	Fingerprint string `json:"fingerprint"`
	Algorithm   string `json:"algorithm"`
	// PublicKey is the SPKI DER.
	PublicKey []byte    `json:"public_key"`
	KeyName   string    `json:"key_name,omitempty"`
	TrustedAt time.Time `json:"trusted_at"`
	// RemovedAt is set when the org stopped trusting the key; the entry is
	// kept so that verification can say KEY_REVOKED instead of
	// UNTRUSTED_SIGNER. Trusting the key again clears it.
	RemovedAt *time.Time `json:"removed_at,omitempty"`
}

// Grant makes Parent trust every key Child trusts directly (one level, not
// transitive: Cloacina's semantics).
type Grant struct {
	Child     string     `json:"child"`
	GrantedAt time.Time  `json:"granted_at"`
	RevokedAt *time.Time `json:"revoked_at,omitempty"`
}

// Org is a verification domain: the keys it trusts and its policy. An org
// nobody configured is the zero Org with its ID set: it trusts nothing.
type Org struct {
	ID                string       `json:"id"`
	RequireSignatures bool         `json:"require_signatures"`
	Trusted           []TrustedKey `json:"trusted,omitempty"`
	Grants            []Grant      `json:"grants,omitempty"`
	UpdatedAt         time.Time    `json:"updated_at"`
}

// Configured reports whether the org was ever written: every write of an
// org (trust, grant, policy) stamps UpdatedAt with its audit event's time,
// which is never zero (PrepareEvent), while an org nobody configured is
// returned by GetOrg as Org{ID: id}.
func (o Org) Configured() bool { return !o.UpdatedAt.IsZero() }

// Entry returns the org's direct entry for fingerprint, active or
// removed; nil if it has none.
func (o Org) Entry(fingerprint string) *TrustedKey {
	for i := range o.Trusted {
		if o.Trusted[i].Fingerprint == fingerprint {
			return &o.Trusted[i]
		}
	}
	return nil
}

// TrustsActively reports whether the org directly trusts fingerprint, not
// removed.
func (o Org) TrustsActively(fingerprint string) bool {
	e := o.Entry(fingerprint)
	return e != nil && e.RemovedAt == nil
}

// Format names a signature document format.
type Format string

// Formats.
const (
	FormatCloacina  Format = "cloacina"
	FormatSchemaPin Format = "schemapin"
)

// SignatureRecord is what the daemon signed, kept so that loaders can verify
// without a detached signature and so online verification can detect edited
// metadata.
type SignatureRecord struct {
	// Digest is the 32-byte artifact digest (package SHA-256 or skill root).
	Digest       []byte    `json:"digest"`
	Format       Format    `json:"format"`
	KeyName      string    `json:"key_name"`
	KeyVersion   uint32    `json:"key_version"`
	Fingerprint  string    `json:"fingerprint"`
	Algorithm    string    `json:"algorithm"`
	Signature    []byte    `json:"signature"`
	SignedAt     time.Time `json:"signed_at"`
	ArtifactName string    `json:"artifact_name,omitempty"`
	Caller       string    `json:"caller,omitempty"`
	// Document is the exact signature document returned to the client.
	Document []byte `json:"document"`
}

// AuditEvent describes one operation for the append-only audit log. The
// store assigns Seq, PrevHash and Hash.
type AuditEvent struct {
	Time      time.Time `json:"time"`
	Caller    string    `json:"caller"`
	Operation string    `json:"operation"`
	Key       string    `json:"key,omitempty"`
	Org       string    `json:"org,omitempty"`
	Digest    string    `json:"digest,omitempty"` // lowercase hex
	Outcome   string    `json:"outcome"`          // "ok", "denied", or a reason
	Detail    string    `json:"detail,omitempty"`
	// Signature is the raw signature handed out, on the record of a
	// signature (PutSignature sets it from the SignatureRecord): with
	// Digest it lets the transparency log prove that this digest and this
	// signature were logged. Records carrying one use the version 2
	// encoding (EncodeAuditRecord).
	Signature []byte `json:"signature,omitempty"`
}

// AuditRecord is an AuditEvent as stored: sequence-numbered and hash-chained.
// Hash = SHA-256 of the canonical encoding of the record with Hash empty;
// PrevHash is the previous record's Hash (32 zero bytes for Seq 1).
type AuditRecord struct {
	Seq      uint64 `json:"seq"`
	PrevHash []byte `json:"prev_hash"`
	AuditEvent
	Hash []byte `json:"hash"`
}

// Checkpoint is the audit key's signed statement that the audit log's
// record Seq has hash Hash, and so (through the chain) that records 1..Seq
// are exactly as they were at Time. The signature covers every field but
// itself; internal/auditlog defines the encoding and checks it.
type Checkpoint struct {
	Seq  uint64    `json:"seq"`
	Hash []byte    `json:"hash"`
	Time time.Time `json:"time"`
	// KeyFingerprint is the lowercase hex SHA-256 of the audit key's SPKI
	// DER.
	KeyFingerprint string `json:"key_fingerprint"`
	// StateDigest is StateDigest of the security state as it was after
	// record Seq (state.go). Empty in checkpoints signed before state
	// digests existed, which keep their original (v1) encoding and still
	// verify; they vouch for no state.
	StateDigest []byte `json:"state_digest,omitempty"`
	// Signature is ECDSA P-256 over SHA-256 of the canonical encoding, in
	// ASN.1 DER.
	Signature []byte `json:"signature"`
	// Note is the same checkpoint as a C2SP tlog-checkpoint signed note
	// (internal/auditlog/note.go): origin, tree size Seq, the RFC 9162 root
	// of leaves 1..Seq, the state digest as an extension line, signed by
	// the Ed25519 log key. Empty in checkpoints written before the log
	// was a Merkle tree; the ECDSA signature above does not cover it (the
	// note carries its own signature).
	Note []byte `json:"note,omitempty"`
}

// Store is signerd's durable state. Implementations are safe for concurrent
// use. Errors wrap errdefs kinds: ErrNotFound, ErrAlreadyExists,
// ErrInvalidArgument, ErrUnavailable.
type Store interface {
	// CreateKey records a new key (with its first version). ErrAlreadyExists
	// if the name is taken.
	CreateKey(ctx context.Context, k Key, ev AuditEvent) error
	// AddKeyVersion appends a version to an existing key (rotation).
	// A key with no active version (revoked) is refused,
	// store.CheckCanAddVersion, in the commit that would add it.
	AddKeyVersion(ctx context.Context, name string, v KeyVersion, ev AuditEvent) error
	// RevokeKeyVersions marks every active version of the key revoked with
	// the given reason and time; on a key with no active version it only
	// escalates the revocation to key_compromise (EditRevokeKey), and
	// returns the reason it escalated from ("" when it revoked active
	// versions), as decided in its commit.
	RevokeKeyVersions(ctx context.Context, name string, reason RevocationReason, at time.Time, ev AuditEvent) (escalatedFrom RevocationReason, err error)
	// GetKey returns a key by name; ErrNotFound if absent.
	GetKey(ctx context.Context, name string) (Key, error)
	// ListKeys returns all keys ordered by name.
	ListKeys(ctx context.Context) ([]Key, error)
	// FindKeyVersion returns the key and version whose fingerprint matches;
	// ErrNotFound if no key of ours has it.
	FindKeyVersion(ctx context.Context, fingerprint string) (Key, KeyVersion, error)

	// GetOrg returns the org; an unknown org is returned as Org{ID: id}
	// with no error (Org.Configured tells them apart).
	GetOrg(ctx context.Context, id string) (Org, error)
	// ListOrgs returns every configured org ordered by ID.
	ListOrgs(ctx context.Context) ([]Org, error)
	// TrustKey adds (or re-activates) a trusted key in the org.
	// ErrAlreadyExists if it is already actively trusted.
	TrustKey(ctx context.Context, org string, k TrustedKey, ev AuditEvent) error
	// TrustKeyVersion is TrustKey for k, a version of key keyName, only
	// if the commit finds that version active: otherwise it writes
	// nothing and returns ErrFailedPrecondition with reason KEY_REVOKED
	// (ErrNotFound for an unknown key), so that trust given by key name
	// never follows the key's revocation.
	TrustKeyVersion(ctx context.Context, org, keyName string, k TrustedKey, ev AuditEvent) error
	// CarryTrust makes org trust next, the version of key keyName after
	// the one whose fingerprint is prev, as a rotation carries trust,
	// only if the commit finds the org actively trusting prev, holding no
	// entry for next (a removed one included) and next an active version
	// of keyName (EditCarryTrust). Otherwise it writes nothing and
	// returns an error that is ErrNotCarried.
	CarryTrust(ctx context.Context, org, keyName, prev string, next TrustedKey, ev AuditEvent) error
	// RemoveTrust marks the org's trust in the fingerprint removed.
	// ErrNotFound if the org does not actively trust it. Either way it
	// returns the children of the org's active grants through which the
	// org still accepts the key (StillTrustedVia), as the commit found
	// them, and adds them to the audit detail (WithStillTrustedVia).
	RemoveTrust(ctx context.Context, org, fingerprint string, at time.Time, ev AuditEvent) (stillVia []string, err error)
	// GrantTrust records grant(parent, child). ErrAlreadyExists if active;
	// ErrInvalidArgument if parent == child.
	GrantTrust(ctx context.Context, parent, child string, at time.Time, ev AuditEvent) error
	// RevokeGrant ends grant(parent, child). ErrNotFound if not active.
	RevokeGrant(ctx context.Context, parent, child string, at time.Time, ev AuditEvent) error
	// SetRequireSignatures sets the org's policy.
	SetRequireSignatures(ctx context.Context, org string, require bool, ev AuditEvent) error

	// PutSignature records a signature and its audit event durably. Under
	// concurrent load implementations batch commits (group commit) but
	// never return before the record is durable. A record whose key
	// version (rec.KeyName, rec.KeyVersion) is revoked when its commit
	// is decided is refused with RevokedBeforeRecorded: no signature
	// record follows its key version's revocation in the log. A key the
	// store does not hold is not checked.
	PutSignature(ctx context.Context, rec SignatureRecord, ev AuditEvent) error
	// SignaturesByDigest returns every record for the digest, oldest first.
	SignaturesByDigest(ctx context.Context, digest []byte) ([]SignatureRecord, error)

	// AppendAudit records an event that changes no other state (a denial,
	// a failed verification).
	AppendAudit(ctx context.Context, ev AuditEvent) (AuditRecord, error)
	// ListAudit returns records with Seq > since, at most limit (0: all).
	ListAudit(ctx context.Context, since uint64, limit int) ([]AuditRecord, error)
	// AuditHead returns the seq and hash of the last audit record as the
	// store records it: 0 and GenesisHash() for an empty log.
	AuditHead(ctx context.Context) (seq uint64, hash []byte, err error)
	// VerifyAudit checks the whole audit chain and that the recorded head
	// is its last record. It returns nil, a *ChainError naming the first
	// bad record, or another error if the log could not be read.
	VerifyAudit(ctx context.Context) error

	// SetAuditKey records the audit checkpoint key. It is kept apart from
	// the signing keys: GetKey, ListKeys and FindKeyVersion never return
	// it. ErrAlreadyExists if one is recorded.
	SetAuditKey(ctx context.Context, k Key, ev AuditEvent) error
	// AuditKey returns the audit checkpoint key; ErrNotFound if none.
	AuditKey(ctx context.Context) (Key, error)
	// SetLogKey records the transparency log's note key (an Ed25519 key
	// in the HSM that signs checkpoints as C2SP signed notes), kept apart
	// from the signing keys like the audit key. ErrAlreadyExists if one is
	// recorded.
	SetLogKey(ctx context.Context, k Key, ev AuditEvent) error
	// LogKey returns the log's note key; ErrNotFound if none.
	LogKey(ctx context.Context) (Key, error)
	// PutCheckpoint records a signed checkpoint of the audit log. c.Seq
	// MUST be at most the head and greater than every recorded
	// checkpoint's (ErrAlreadyExists if equal to the newest), and c.Hash
	// MUST be the hash of record c.Seq; otherwise ErrFailedPrecondition.
	// A checkpoint is a statement about the log, not an event in it: no
	// audit record is appended (one would move the head it certifies).
	PutCheckpoint(ctx context.Context, c Checkpoint) error
	// ListCheckpoints returns every checkpoint in ascending Seq order.
	ListCheckpoints(ctx context.Context) ([]Checkpoint, error)

	// LogReader answers the transparency log's questions (tree.go).
	LogReader

	// Close releases the database.
	Close() error
}
