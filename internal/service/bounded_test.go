package service

import (
	"fmt"
	"strings"
	"testing"
)

func TestBoundedMap(t *testing.T) {
	tests := []struct {
		name               string
		maxEntries, maxB   int
		valueLen, inserts  int
		wantLastFound      int // the most recent inserts must still be found
		wantMaxLen, wantMB int
	}{
		{"entries bind", 100, 1 << 20, 10, 10_000, 50, 100, 1 << 20},
		{"bytes bind", 1 << 20, 10_000, 100, 10_000, 40, 1 << 20, 10_000},
		{"too big to keep", 100, 1000, 600, 10, 0, 0, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := newBoundedMap(tt.maxEntries, tt.maxB, func(k string, v string) int { return len(k) + len(v) })
			for i := range tt.inserts {
				m.put(fmt.Sprint(i), strings.Repeat("v", tt.valueLen))
				if m.len() > tt.wantMaxLen || m.bytes() > tt.wantMB {
					t.Fatalf("after %d inserts: %d entries, %d bytes; bounds %d, %d", i+1, m.len(), m.bytes(), tt.wantMaxLen, tt.wantMB)
				}
			}
			for i := tt.inserts - tt.wantLastFound; i < tt.inserts; i++ {
				if _, ok := m.get(fmt.Sprint(i)); !ok {
					t.Fatalf("recent entry %d dropped", i)
				}
			}
			m.reset()
			if m.len() != 0 || m.bytes() != 0 {
				t.Fatal("reset kept entries")
			}
		})
	}
}

// Made-up orgs leave nothing in the caches: only configured orgs are
// cached, and those within the bound.
func TestUnknownOrgsNotCached(t *testing.T) {
	f := newFixture(t)
	for i := range 2000 {
		if _, err := f.svc.Verify(f.ctx, VerifyInput{Org: fmt.Sprintf("made-up-%d", i), Digest: digestOf("x")}); err == nil {
			t.Fatal("Verify for a made-up org succeeded")
		}
		if _, err := f.svc.ListTrusted(f.ctx, fmt.Sprintf("made-up-%d", i)); err == nil {
			t.Fatal("ListTrusted for a made-up org succeeded")
		}
	}
	f.svc.cache.mu.RLock()
	n := f.svc.cache.views.len() + f.svc.cache.byFP.len() + f.svc.cache.named.len()
	f.svc.cache.mu.RUnlock()
	if n != 0 {
		t.Fatalf("%d cache entries after asking about made-up orgs, want 0", n)
	}
	if err := f.svc.SetRequireSignatures(f.ctx, "real", false); err != nil {
		t.Fatal(err)
	}
	if _, err := f.svc.Verify(f.ctx, VerifyInput{Org: "real", Digest: digestOf("x")}); err != nil {
		t.Fatal(err)
	}
	if n := f.svc.cache.views.len(); n != 1 {
		t.Fatalf("%d views cached for one configured org", n)
	}
}
