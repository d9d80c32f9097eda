package boltstore

import (
	"context"
	"encoding/binary"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/signerd/signerd/internal/errdefs"
	"github.com/signerd/signerd/internal/store"
)

func errKeyNotFound(name string) error {
	return errdefs.WithReason(errdefs.ReasonKeyNotFound, fmt.Errorf("key %q: %w", name, errdefs.ErrNotFound))
}

// CreateKey records a new key with its versions, numbered from 1, and
// indexes their fingerprints and CKA_IDs. ErrAlreadyExists if the name, or
// any version's fingerprint or CKA_ID, is already used by a key.
func (s *Store) CreateKey(ctx context.Context, k store.Key, ev store.AuditEvent) error {
	k, err := store.PrepareNewKey(k)
	if err != nil {
		return err
	}
	ev, err = store.PrepareEvent(ev)
	if err != nil {
		return err
	}

	return s.update(ctx, func(tx *bolt.Tx) error {
		keys, err := bucket(tx, bucketKeyKeys)
		if err != nil {
			return err
		}
		if keys.Get([]byte(k.Name)) != nil {
			return errdefs.WithReason(errdefs.ReasonKeyExists, fmt.Errorf("key %q: %w", k.Name, errdefs.ErrAlreadyExists))
		}
		for _, v := range k.Versions {
			if err := indexVersion(tx, k.Name, v); err != nil {
				return err
			}
		}
		if err := putJSON(keys, []byte(k.Name), k); err != nil {
			return err
		}
		_, err = appendAudit(tx, ev)
		return err
	})
}

// AddKeyVersion appends v to the named key. v.Version must be the key's
// last version + 1: ErrAlreadyExists if that version exists (a concurrent
// rotation won), ErrInvalidArgument if it skips. ErrAlreadyExists also if
// v's fingerprint or CKA_ID is used by any key.
func (s *Store) AddKeyVersion(ctx context.Context, name string, v store.KeyVersion, ev store.AuditEvent) error {
	if err := store.CheckName("key name", name); err != nil {
		return err
	}
	v, err := store.PrepareVersion(v)
	if err != nil {
		return fmt.Errorf("key %q: %w", name, err)
	}
	if ev, err = store.PrepareEvent(ev); err != nil {
		return err
	}

	return s.update(ctx, func(tx *bolt.Tx) error {
		keys, err := bucket(tx, bucketKeyKeys)
		if err != nil {
			return err
		}
		k, ok, err := getJSON[store.Key](keys, []byte(name))
		if err != nil {
			return err
		}
		if !ok {
			return errKeyNotFound(name)
		}
		if err := store.CheckCanAddVersion(k); err != nil {
			return err
		}
		last := uint32(len(k.Versions))
		switch {
		case v.Version == 0:
			return store.Invalid("key %q: versions are numbered from 1", name)
		case v.Version <= last:
			return fmt.Errorf("key %q already has version %d: %w", name, v.Version, errdefs.ErrAlreadyExists)
		case v.Version != last+1:
			return store.Invalid("key %q: next version is %d, not %d", name, last+1, v.Version)
		}
		if err := indexVersion(tx, name, v); err != nil {
			return err
		}
		k.Versions = append(k.Versions, v)
		if err := putJSON(keys, []byte(name), k); err != nil {
			return err
		}
		_, err = appendAudit(tx, ev)
		return err
	})
}

// indexVersion adds v to the fingerprint and CKA_ID indexes, refusing
// values some key already uses.
func indexVersion(tx *bolt.Tx, name string, v store.KeyVersion) error {
	fps, err := bucket(tx, bucketKeyFingerprints)
	if err != nil {
		return err
	}
	ids, err := bucket(tx, bucketKeyCKAIDs)
	if err != nil {
		return err
	}
	if ref := fps.Get([]byte(v.Fingerprint)); ref != nil {
		other, _, _ := decodeFingerprintRef(ref)
		return fmt.Errorf("fingerprint %s is already key %q's: %w", v.Fingerprint, other, errdefs.ErrAlreadyExists)
	}
	if other := ids.Get(v.CKAID); other != nil {
		return fmt.Errorf("CKA_ID %x is already key %q's: %w", v.CKAID, other, errdefs.ErrAlreadyExists)
	}
	if err := fps.Put([]byte(v.Fingerprint), encodeFingerprintRef(name, v.Version)); err != nil {
		return err
	}
	return ids.Put(v.CKAID, []byte(name))
}

// encodeFingerprintRef is the fingerprints index value: uint32be(version) ‖
// key name.
func encodeFingerprintRef(name string, version uint32) []byte {
	return append(binary.BigEndian.AppendUint32(nil, version), name...)
}

func decodeFingerprintRef(raw []byte) (name string, version uint32, err error) {
	if len(raw) < 5 {
		return "", 0, fmt.Errorf("fingerprint index entry %x too short: %w", raw, errdefs.ErrInternal)
	}
	return string(raw[4:]), binary.BigEndian.Uint32(raw[:4]), nil
}

// RevokeKeyVersions revokes the key's active versions, or escalates a
// revoked key to key_compromise, as store.EditRevokeKey defines.
// ErrNotFound for an unknown key; ErrFailedPrecondition for any other
// change to a revoked key (revoking twice is a mistake worth telling the
// operator, not a silent success).
func (s *Store) RevokeKeyVersions(ctx context.Context, name string, reason store.RevocationReason, at time.Time, ev store.AuditEvent) (store.RevocationReason, error) {
	edit, err := store.EditRevokeKey(name, reason, at)
	if err != nil {
		return "", err
	}
	ev, err = store.PrepareEvent(ev)
	if err != nil {
		return "", err
	}
	var escalatedFrom store.RevocationReason
	err = s.update(ctx, func(tx *bolt.Tx) error {
		keys, err := bucket(tx, bucketKeyKeys)
		if err != nil {
			return err
		}
		k, ok, err := getJSON[store.Key](keys, []byte(name))
		if err != nil {
			return err
		}
		if !ok {
			return errKeyNotFound(name)
		}
		from, err := edit(&k)
		if err != nil {
			return err
		}
		if err := putJSON(keys, []byte(name), k); err != nil {
			return err
		}
		// Still under the journal's writer lock (update): no group is
		// decided between this commit and the set knowing of it.
		tx.OnCommit(func() { s.revoked.add(k) })
		ev := ev
		ev.Detail = store.WithEscalation(ev.Detail, from)
		escalatedFrom = from
		_, err = appendAudit(tx, ev)
		return err
	})
	if err != nil {
		return "", err
	}
	return escalatedFrom, nil
}

// GetKey returns the named key; ErrNotFound (reason KEY_NOT_FOUND) if absent.
func (s *Store) GetKey(ctx context.Context, name string) (store.Key, error) {
	if err := store.CheckName("key name", name); err != nil {
		return store.Key{}, err
	}
	var k store.Key
	err := s.view(ctx, func(tx *bolt.Tx) error {
		keys, err := bucket(tx, bucketKeyKeys)
		if err != nil {
			return err
		}
		var ok bool
		k, ok, err = getJSON[store.Key](keys, []byte(name))
		if err == nil && !ok {
			err = errKeyNotFound(name)
		}
		return err
	})
	return k, err
}

// ListKeys returns every key ordered by name (byte order).
func (s *Store) ListKeys(ctx context.Context) ([]store.Key, error) {
	var out []store.Key
	err := s.view(ctx, func(tx *bolt.Tx) error {
		keys, err := bucket(tx, bucketKeyKeys)
		if err != nil {
			return err
		}
		return keys.ForEach(func(name, raw []byte) error {
			k, err := decodeJSON[store.Key](name, raw)
			out = append(out, k)
			return err
		})
	})
	return out, err
}

// FindKeyVersion returns the key and version with the fingerprint (exact
// match); ErrNotFound if no key of ours has it.
func (s *Store) FindKeyVersion(ctx context.Context, fingerprint string) (store.Key, store.KeyVersion, error) {
	if err := store.CheckName("fingerprint", fingerprint); err != nil {
		return store.Key{}, store.KeyVersion{}, err
	}
	var (
		k store.Key
		v store.KeyVersion
	)
	err := s.view(ctx, func(tx *bolt.Tx) error {
		fps, err := bucket(tx, bucketKeyFingerprints)
		if err != nil {
			return err
		}
		ref := fps.Get([]byte(fingerprint))
		if ref == nil {
			return errdefs.WithReason(errdefs.ReasonKeyNotFound,
				fmt.Errorf("no key has fingerprint %s: %w", fingerprint, errdefs.ErrNotFound))
		}
		name, version, err := decodeFingerprintRef(ref)
		if err != nil {
			return err
		}
		keys, err := bucket(tx, bucketKeyKeys)
		if err != nil {
			return err
		}
		var ok bool
		if k, ok, err = getJSON[store.Key](keys, []byte(name)); err != nil {
			return err
		}
		if ok && version >= 1 && int(version) <= len(k.Versions) && k.Versions[version-1].Fingerprint == fingerprint {
			v = k.Versions[version-1]
			return nil
		}
		return fmt.Errorf("fingerprint index points at key %q version %d, which does not have it: %w", name, version, errdefs.ErrInternal)
	})
	return k, v, err
}
