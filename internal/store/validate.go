package store

import (
	"bytes"
	"encoding/hex"
	"fmt"
	"strings"
	"time"

	"github.com/signerd/signerd/internal/errdefs"
)

// Input checks every backend runs before it opens a transaction, so bad
// input never changes state, never appends an audit record and never spoils
// a group commit; one definition, so the backends cannot drift apart (the
// conformance suite, storetest, holds them to it).

// MaxNameLen bounds names, IDs and fingerprints: they are database keys
// (bbolt refuses keys over 32 KiB, etcd keys share its request limit) and
// appear in every log line and audit record.
const MaxNameLen = 1024

// DigestSize is the length of every artifact digest (SHA-256 or a skill
// root).
const DigestSize = 32

// Invalid is an ErrInvalidArgument with a message.
func Invalid(format string, args ...any) error {
	return fmt.Errorf(format+": %w", append(args, errdefs.ErrInvalidArgument)...)
}

// CheckName requires a non-empty name of at most MaxNameLen bytes.
func CheckName(what, s string) error {
	switch {
	case s == "":
		return Invalid("%s is empty", what)
	case len(s) > MaxNameLen:
		return Invalid("%s is longer than %d bytes", what, MaxNameLen)
	}
	return nil
}

// CheckBytes requires a non-empty value of at most MaxNameLen bytes.
func CheckBytes(what string, b []byte) error {
	switch {
	case len(b) == 0:
		return Invalid("%s is empty", what)
	case len(b) > MaxNameLen:
		return Invalid("%s is longer than %d bytes", what, MaxNameLen)
	}
	return nil
}

// CheckTime requires a set time.
func CheckTime(what string, t time.Time) error {
	if t.IsZero() {
		return Invalid("%s is not set", what)
	}
	return nil
}

// CheckDigest requires a DigestSize-byte digest.
func CheckDigest(d []byte) error {
	if len(d) != DigestSize {
		return Invalid("digest is %d bytes, want %d", len(d), DigestSize)
	}
	return nil
}

// PrepareEvent validates ev and fixes its time: the store's clock if unset,
// UTC always (the hashed form; UTC also drops the monotonic reading).
func PrepareEvent(ev AuditEvent) (AuditEvent, error) {
	if err := CheckName("audit event operation", ev.Operation); err != nil {
		return ev, err
	}
	if ev.Time.IsZero() {
		ev.Time = time.Now()
	}
	ev.Time = ev.Time.UTC()
	return ev, nil
}

// PrepareVersion validates v; an empty State means active.
func PrepareVersion(v KeyVersion) (KeyVersion, error) {
	if err := CheckName("fingerprint", v.Fingerprint); err != nil {
		return v, fmt.Errorf("key version %d: %w", v.Version, err)
	}
	if err := CheckBytes("CKA_ID", v.CKAID); err != nil {
		return v, fmt.Errorf("key version %d: %w", v.Version, err)
	}
	switch v.State {
	case "":
		v.State = KeyActive
	case KeyActive, KeyRevoked:
	default:
		return v, Invalid("key version %d: unknown state %q", v.Version, v.State)
	}
	return v, nil
}

// CheckReason requires one of SchemaPin's four revocation reasons.
func CheckReason(r RevocationReason) error {
	switch r {
	case ReasonKeyCompromise, ReasonSuperseded, ReasonCessationOfOperation, ReasonPrivilegeWithdrawn:
		return nil
	}
	return Invalid("unknown revocation reason %q", r)
}

// CheckSignatureRecord validates a record for PutSignature.
func CheckSignatureRecord(rec SignatureRecord) error {
	if err := CheckDigest(rec.Digest); err != nil {
		return err
	}
	switch rec.Format {
	case FormatCloacina, FormatSchemaPin:
	default:
		return Invalid("unknown signature format %q", rec.Format)
	}
	if err := CheckName("key name", rec.KeyName); err != nil {
		return err
	}
	if err := CheckName("fingerprint", rec.Fingerprint); err != nil {
		return err
	}
	if len(rec.Signature) == 0 {
		return Invalid("signature is empty")
	}
	return nil
}

// PrepareNewKey validates a key for CreateKey and returns it with its
// versions prepared: at least one, numbered 1, 2, …, each with its own
// fingerprint and CKA_ID.
func PrepareNewKey(k Key) (Key, error) {
	if err := CheckName("key name", k.Name); err != nil {
		return k, err
	}
	if len(k.Versions) == 0 {
		return k, Invalid("key %q has no version", k.Name)
	}
	versions := make([]KeyVersion, len(k.Versions))
	fps, ids := map[string]bool{}, map[string]bool{}
	for i, v := range k.Versions {
		if v.Version != uint32(i+1) {
			return k, Invalid("key %q: versions must be numbered 1, 2, …; found %d at position %d", k.Name, v.Version, i+1)
		}
		v, err := PrepareVersion(v)
		if err != nil {
			return k, fmt.Errorf("key %q: %w", k.Name, err)
		}
		if fps[v.Fingerprint] || ids[string(v.CKAID)] {
			return k, Invalid("key %q: versions share a fingerprint or CKA_ID", k.Name)
		}
		fps[v.Fingerprint], ids[string(v.CKAID)] = true, true
		versions[i] = v
	}
	k.Versions = versions
	return k, nil
}

// PrepareAuditKey validates the audit checkpoint key for SetAuditKey: like
// PrepareNewKey, and every version must carry its public key (verifiers
// need it to check checkpoints).
func PrepareAuditKey(k Key) (Key, error) {
	if err := CheckName("key name", k.Name); err != nil {
		return k, err
	}
	if len(k.Versions) == 0 {
		return k, Invalid("audit key %q has no version", k.Name)
	}
	versions := make([]KeyVersion, len(k.Versions))
	for i, v := range k.Versions {
		if v.Version != uint32(i+1) {
			return k, Invalid("audit key %q: versions must be numbered 1, 2, …; found %d at position %d", k.Name, v.Version, i+1)
		}
		v, err := PrepareVersion(v)
		if err != nil {
			return k, fmt.Errorf("audit key %q: %w", k.Name, err)
		}
		if len(v.PublicKey) == 0 {
			return k, Invalid("audit key %q version %d has no public key", k.Name, v.Version)
		}
		versions[i] = v
	}
	k.Versions = versions
	return k, nil
}

// PrepareSignatureEvent is PrepareEvent for the record of rec: the record
// carries rec's signature bytes (AuditEvent.Signature), so the log, not
// only the signature store, says which signature was handed out. An event
// that already names a different signature is refused.
func PrepareSignatureEvent(rec SignatureRecord, ev AuditEvent) (AuditEvent, error) {
	ev, err := PrepareEvent(ev)
	if err != nil {
		return ev, err
	}
	if len(ev.Signature) > 0 && !bytes.Equal(ev.Signature, rec.Signature) {
		return ev, Invalid("the audit event names a different signature than the record it audits")
	}
	// The digest too: a signature's log leaf is found by digest and
	// signature, and its audit record must name both.
	want := hex.EncodeToString(rec.Digest)
	if ev.Digest != "" && !strings.EqualFold(ev.Digest, want) {
		return ev, Invalid("the audit event names a different digest than the record it audits")
	}
	ev.Digest = want
	ev.Signature = bytes.Clone(rec.Signature)
	return ev, nil
}
