package etcdstore

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/signerd/signerd/internal/store"
	"github.com/signerd/signerd/internal/store/storetest"
	"github.com/signerd/signerd/internal/testutil/etcdtest"
)

// prefixes numbers the prefixes the tests of this package use, so stores
// sharing a cluster never see each other.
var prefixes atomic.Uint64

func newPrefix() string { return fmt.Sprintf("/signerd-test/%d/", prefixes.Add(1)) }

// openOn opens a store on a new prefix of the cluster through cli, closed
// at the end of the test.
func openOn(t *testing.T, cli *clientv3.Client, prefix string) *Store {
	t.Helper()
	s, err := Open(context.Background(), Options{Client: cli, Prefix: prefix})
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

// TestConformance runs the store suite against a real 3-member cluster.
func TestConformance(t *testing.T) {
	c := etcdtest.Start(t, 3, etcdtest.Options{})
	cli := c.Client(t)
	storetest.Run(t, func(t *testing.T) store.Store { return openOn(t, cli, newPrefix()) })
}
