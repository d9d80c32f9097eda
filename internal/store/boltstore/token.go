package boltstore

import (
	"context"

	bolt "go.etcd.io/bbolt"

	"github.com/signerd/signerd/internal/store"
)

// keyHSMToken, in the meta bucket, is the JSON store.HSMToken the keys were
// made in.
var keyHSMToken = []byte("hsm_token")

var _ store.TokenPinner = (*Store)(nil)

// PinToken records t if no token is recorded (see store.TokenPinner).
func (s *Store) PinToken(ctx context.Context, t store.HSMToken, ev store.AuditEvent) (store.HSMToken, bool, error) {
	ev, err := store.PrepareEvent(ev)
	if err != nil {
		return store.HSMToken{}, false, err
	}
	var (
		recorded store.HSMToken
		created  bool
	)
	err = s.update(ctx, func(tx *bolt.Tx) error {
		meta, err := bucket(tx, bucketKeyMeta)
		if err != nil {
			return err
		}
		var ok bool
		if recorded, ok, err = getJSON[store.HSMToken](meta, keyHSMToken); err != nil || ok {
			return err
		}
		if err := putJSON(meta, keyHSMToken, t); err != nil {
			return err
		}
		recorded, created = t, true
		_, err = appendAudit(tx, ev)
		return err
	})
	if err != nil {
		return store.HSMToken{}, false, err
	}
	return recorded, created, nil
}
