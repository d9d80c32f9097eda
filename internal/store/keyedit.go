package store

import (
	"fmt"
	"time"

	"github.com/signerd/signerd/internal/errdefs"
)

// EditRevokeKey returns the edit every backend applies inside its
// read-modify-write of key name for RevokeKeyVersions, so that revocation
// semantics live in one place whichever store runs:
//
//   - a key with active versions: each is revoked at at for reason;
//   - a key with none, and reason key_compromise: every version revoked for
//     another reason is escalated to key_compromise, keeping the time it
//     stopped signing. Compromise voids every signature by the key, also
//     those made before the revocation, so learning of a compromise after
//     a routine revocation must be recordable;
//   - anything else (the same reason again, or any other change of reason,
//     which would weaken or merely relabel a revocation) is refused with
//     ErrFailedPrecondition and nothing is written.
//
// The edit returns the reason it escalated from ("" when it revoked active
// versions): only the commit knows, since a revocation by another caller
// can commit between the caller's read of the key and this edit. Backends
// put it in the audit event's detail (WithEscalation).
func EditRevokeKey(name string, reason RevocationReason, at time.Time) (func(*Key) (escalatedFrom RevocationReason, err error), error) {
	if err := checkAll(CheckName("key name", name), CheckReason(reason), CheckTime("revocation time", at)); err != nil {
		return nil, err
	}
	return func(k *Key) (RevocationReason, error) {
		n := 0
		for i := range k.Versions {
			if k.Versions[i].State != KeyActive {
				continue
			}
			k.Versions[i].State = KeyRevoked
			k.Versions[i].RevokedAt = &at
			k.Versions[i].RevocationReason = reason
			n++
		}
		if n > 0 {
			return "", nil
		}
		prior := PriorRevocation(*k)
		switch {
		case prior == "":
			return "", fmt.Errorf("key %q has no version to revoke: %w", name, errdefs.ErrFailedPrecondition)
		case reason == ReasonKeyCompromise && prior != ReasonKeyCompromise:
			for i := range k.Versions {
				if v := &k.Versions[i]; v.State == KeyRevoked && v.RevocationReason != ReasonKeyCompromise {
					v.RevocationReason = ReasonKeyCompromise
				}
			}
			return prior, nil
		case reason == prior:
			return "", fmt.Errorf("key %q is already revoked (%s): %w", name, prior, errdefs.ErrFailedPrecondition)
		default:
			return "", fmt.Errorf("key %q is already revoked (%s); a revocation's reason can only be escalated to %s, not changed to %s: %w",
				name, prior, ReasonKeyCompromise, reason, errdefs.ErrFailedPrecondition)
		}
	}, nil
}

// WithEscalation is a revocation's audit detail given what its edit
// escalated from: detail, and " escalated_from=<prior>" after an
// escalation.
func WithEscalation(detail string, escalatedFrom RevocationReason) string {
	switch {
	case escalatedFrom == "":
		return detail
	case detail == "":
		return "escalated_from=" + string(escalatedFrom)
	}
	return detail + " escalated_from=" + string(escalatedFrom)
}

// PriorRevocation is the reason a key with no active version was revoked
// for: the weakest reason among its versions, so that key_compromise means
// every version is already marked compromised. "" for a key with an active
// version or none revoked.
func PriorRevocation(k Key) RevocationReason {
	var r RevocationReason
	for _, v := range k.Versions {
		switch {
		case v.State == KeyActive:
			return ""
		case v.State != KeyRevoked:
		case r == "" || r == ReasonKeyCompromise:
			r = v.RevocationReason
		}
	}
	return r
}

// RevokedBeforeRecorded is PutSignature's refusal of a signature record
// whose key version a revocation committed first: a Sign that looked the
// key up before a concurrent revoke gets this instead of a signature
// released after the revocation. Every backend decides it in the same
// commit that would have written the record, so no record of a version
// follows that version's revocation in the log.
func RevokedBeforeRecorded(name string, version uint32) error {
	return errdefs.WithReason(errdefs.ReasonKeyRevoked, fmt.Errorf(
		"key %q v%d was revoked before its signature was recorded; the signature is discarded: %w", name, version, errdefs.ErrFailedPrecondition))
}

// RevokedVersions returns the numbers of k's revoked versions.
func RevokedVersions(k Key) []uint32 {
	var out []uint32
	for _, v := range k.Versions {
		if v.State == KeyRevoked {
			out = append(out, v.Version)
		}
	}
	return out
}

// CheckCanAddVersion is AddKeyVersion's refusal of a revoked key, decided
// in the commit that would add the version, by every backend: a rotation
// that checked the key before a concurrent revocation committed must not
// bring the key back (its new version active, and trusted by every org
// that trusted the revoked one). A revoked key is replaced by a new key.
func CheckCanAddVersion(k Key) error {
	if prior := PriorRevocation(k); prior != "" {
		return errdefs.WithReason(errdefs.ReasonKeyRevoked, fmt.Errorf(
			"key %q is revoked (%s); create a new key instead of rotating it: %w", k.Name, prior, errdefs.ErrFailedPrecondition))
	}
	return nil
}
