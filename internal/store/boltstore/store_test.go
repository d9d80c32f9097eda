package boltstore

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/signerd/signerd/internal/store"
	"github.com/signerd/signerd/internal/store/storetest"
)

// openTemp opens a new database in t.TempDir() and closes it at cleanup.
func openTemp(t *testing.T) *Store {
	t.Helper()
	s, err := Open(context.Background(), filepath.Join(t.TempDir(), "signerd.db"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return s
}

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store { return openTemp(t) })
}
