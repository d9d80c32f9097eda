package boltstore

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/signerd/signerd/internal/store"
)

func TestCheckPages(t *testing.T) {
	s := openTemp(t)
	ctx := context.Background()
	if err := s.CheckPages(ctx); err != nil {
		t.Fatalf("a new database: %v", err)
	}
	// Enough records to split pages and free some.
	for i := range 300 {
		ev := store.AuditEvent{Time: time.Now().UTC(), Caller: "uid:0", Operation: "test", Outcome: "ok", Detail: fmt.Sprintf("record %d of a long enough detail to fill pages", i)}
		if _, err := s.AppendAudit(ctx, ev); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.CheckPages(ctx); err != nil {
		t.Fatalf("after appends: %v", err)
	}
	ctx, cancel := context.WithCancel(ctx)
	cancel()
	if err := s.CheckPages(ctx); err == nil {
		t.Fatal("CheckPages ran with a cancelled context")
	}
}
