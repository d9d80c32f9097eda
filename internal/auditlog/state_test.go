package auditlog

import (
	"context"
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/signerd/signerd/internal/store"
	"github.com/signerd/signerd/internal/store/boltstore"
)

// TestVerifyState: Verify compares the security state of a real bbolt
// store with the newest checkpoint's state digest, the way signctl audit
// verify does online and offline.
func TestVerifyState(t *testing.T) {
	key := newKey(t)
	fp := Fingerprint(&key.PublicKey)
	ctx := context.Background()
	at := time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)
	ev := func(op string) store.AuditEvent {
		return store.AuditEvent{Time: at, Caller: "uid:0", Operation: op, Outcome: "ok"}
	}
	trust := func(t *testing.T, s *boltstore.Store, org, fpr string) {
		t.Helper()
		e := ev("trust.add")
		e.Org = org
		if err := s.TrustKey(ctx, org, store.TrustedKey{Fingerprint: fpr, Algorithm: "ed25519", PublicKey: []byte{1}, TrustedAt: at}, e); err != nil {
			t.Fatal(err)
		}
	}
	checkpoint := func(t *testing.T, s *boltstore.Store, digest []byte) {
		t.Helper()
		seq, hash, err := s.AuditHead(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if digest == nil {
			if digest, err = store.StateDigest(ctx, s); err != nil {
				t.Fatal(err)
			}
		}
		c, err := SignCheckpoint(key, store.Checkpoint{Seq: seq, Hash: hash, Time: at, KeyFingerprint: fp, StateDigest: digest})
		if err != nil {
			t.Fatal(err)
		}
		if err := s.PutCheckpoint(ctx, c); err != nil {
			t.Fatal(err)
		}
	}
	tests := []struct {
		name        string
		build       func(t *testing.T, s *boltstore.Store)
		wantKind    string // "" for no error
		wantMatches bool
		wantChanges int
	}{
		{"vouched", func(t *testing.T, s *boltstore.Store) {
			trust(t, s, "acme", "aa")
			checkpoint(t, s, nil)
			if _, err := s.AppendAudit(ctx, ev("verify")); err != nil { // changes nothing
				t.Fatal(err)
			}
		}, "", true, 0},
		{"recorded change after the checkpoint", func(t *testing.T, s *boltstore.Store) {
			trust(t, s, "acme", "aa")
			checkpoint(t, s, nil)
			trust(t, s, "acme", "bb")
		}, "", false, 1},
		{"no record explains the state", func(t *testing.T, s *boltstore.Store) {
			trust(t, s, "acme", "aa")
			checkpoint(t, s, make([]byte, 32)) // vouches for another state
		}, store.ChainStateUnexplained, false, 0},
		{"no state checkpoint yet", func(t *testing.T, s *boltstore.Store) {
			trust(t, s, "acme", "aa")
		}, "", false, 1},
		{"vouching began, its checkpoints are gone", func(t *testing.T, s *boltstore.Store) {
			trust(t, s, "acme", "aa")
			if _, err := s.AppendAudit(ctx, ev(store.OpStateBaseline)); err != nil {
				t.Fatal(err)
			}
		}, store.ChainStateUnexplained, false, 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := boltstore.Open(ctx, filepath.Join(t.TempDir(), "s.db"), boltstore.Options{})
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			tt.build(t, s)
			rep, err := Verify(ctx, s, &key.PublicKey)
			var ce *store.ChainError
			switch {
			case tt.wantKind == "" && err != nil:
				t.Fatalf("Verify: %v", err)
			case tt.wantKind != "" && (!errors.As(err, &ce) || ce.Kind != tt.wantKind):
				t.Fatalf("Verify = %v, want %s", err, tt.wantKind)
			}
			if rep.State == nil || rep.State.Matches() != tt.wantMatches || rep.State.ChangesAfter != tt.wantChanges {
				t.Fatalf("state report %+v, want matches=%v changes=%d", rep.State, tt.wantMatches, tt.wantChanges)
			}
		})
	}
}
