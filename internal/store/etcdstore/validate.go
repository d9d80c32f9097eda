package etcdstore

import (
	"fmt"
	"time"

	"github.com/signerd/signerd/internal/errdefs"
	"github.com/signerd/signerd/internal/store"
)

// Input checks run before any transaction is built, so bad input never
// changes state, never appends an audit record and never spoils a group
// commit. They are boltstore's (validate.go there), repeated rather than
// shared so that each backend stays self-contained; the conformance suite
// (storetest) holds both to the same rules.

// maxNameLen bounds names, IDs and fingerprints: they are parts of etcd
// keys and appear in every log line and audit record. (The same bound as
// boltstore, so that a store migrated from bbolt fits.)
const maxNameLen = 1024

func invalid(format string, args ...any) error {
	return fmt.Errorf(format+": %w", append(args, errdefs.ErrInvalidArgument)...)
}

func checkName(what, s string) error {
	switch {
	case s == "":
		return invalid("%s is empty", what)
	case len(s) > maxNameLen:
		return invalid("%s is longer than %d bytes", what, maxNameLen)
	}
	return nil
}

func checkBytes(what string, b []byte) error {
	switch {
	case len(b) == 0:
		return invalid("%s is empty", what)
	case len(b) > maxNameLen:
		return invalid("%s is longer than %d bytes", what, maxNameLen)
	}
	return nil
}

func checkTime(what string, t time.Time) error {
	if t.IsZero() {
		return invalid("%s is not set", what)
	}
	return nil
}

func checkDigest(d []byte) error {
	if len(d) != digestSize {
		return invalid("digest is %d bytes, want %d", len(d), digestSize)
	}
	return nil
}

// prepareEvent validates ev and fixes its time: the store's clock if unset,
// UTC always (the hashed form; UTC also drops the monotonic reading).
func prepareEvent(ev store.AuditEvent) (store.AuditEvent, error) {
	if err := checkName("audit event operation", ev.Operation); err != nil {
		return ev, err
	}
	if ev.Time.IsZero() {
		ev.Time = time.Now()
	}
	ev.Time = ev.Time.UTC()
	return ev, nil
}

// prepareVersion validates v; an empty State means active.
func prepareVersion(v store.KeyVersion) (store.KeyVersion, error) {
	if err := checkName("fingerprint", v.Fingerprint); err != nil {
		return v, fmt.Errorf("key version %d: %w", v.Version, err)
	}
	if err := checkBytes("CKA_ID", v.CKAID); err != nil {
		return v, fmt.Errorf("key version %d: %w", v.Version, err)
	}
	switch v.State {
	case "":
		v.State = store.KeyActive
	case store.KeyActive, store.KeyRevoked:
	default:
		return v, invalid("key version %d: unknown state %q", v.Version, v.State)
	}
	return v, nil
}

func checkReason(r store.RevocationReason) error {
	switch r {
	case store.ReasonKeyCompromise, store.ReasonSuperseded, store.ReasonCessationOfOperation, store.ReasonPrivilegeWithdrawn:
		return nil
	}
	return invalid("unknown revocation reason %q", r)
}
