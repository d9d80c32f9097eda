package etcdstore

import (
	"context"
	"testing"

	"github.com/signerd/signerd/internal/store"
	"github.com/signerd/signerd/internal/testutil/etcdtest"
)

// TestPinTokenAppliedLate: the pin whose first attempt etcd applies only
// after the writer found it not committed meets its own record when it
// prepares again; the call still reports that it recorded the token.
// Before, it answered "already recorded", and the daemon did not log that
// it had pinned the token.
func TestPinTokenAppliedLate(t *testing.T) {
	c := etcdtest.Start(t, 1, etcdtest.Options{})
	s, fkv := openFaulty(t, c, newPrefix())
	key := s.l.prefix + "meta/hsm-token"
	fkv.delayUntil.Store(&key)
	tok := store.HSMToken{Label: "signerd", Serial: "0123", Model: "SoftHSM v2", Manufacturer: "SoftHSM project"}
	got, created, err := s.PinToken(context.Background(), tok, ev("hsm.token.record"))
	if err != nil || !created || got != tok {
		t.Fatalf("PinToken applied late: %+v created=%v, %v; want the token, created", got, created, err)
	}
	if c := s.Contention(); c.Unknown != 1 || c.Commits != 0 {
		t.Fatalf("counters %+v: want the one attempt applied late and resolved, nothing else committed", c)
	}
	// Pinned once: a second call finds it.
	if _, created, err := s.PinToken(context.Background(), tok, ev("hsm.token.record")); err != nil || created {
		t.Fatalf("second PinToken: created=%v, %v", created, err)
	}
}
