package store

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/signerd/signerd/internal/errdefs"
)

// TestTreeVerifierNamesTheMissingNode: when the stored tree lacks the node
// of a record (a record appended behind the daemon's back, the head moved
// with it), the tree mismatch names that record, not the first record of
// the batch being checked.
func TestTreeVerifierNamesTheMissingNode(t *testing.T) {
	ctx := context.Background()
	const n = 12
	recs := make([]AuditRecord, n)
	leaves := make([][]byte, n)
	for i := range recs {
		recs[i] = AuditRecord{Seq: uint64(i + 1), PrevHash: GenesisHash(), Hash: GenesisHash(),
			AuditEvent: AuditEvent{Time: time.Unix(int64(i), 0).UTC(), Caller: "c", Operation: "op", Outcome: "ok"}}
		leaves[i] = LeafHash(recs[i])
	}
	// The store holds the tree of the first n-1 records only.
	_, nodes, err := AppendLeaves(TreeHead{}, leaves[:n-1])
	if err != nil {
		t.Fatal(err)
	}
	stored := map[NodeID][]byte{}
	for _, nd := range nodes {
		stored[nd.ID] = nd.Hash
	}
	read := func(_ context.Context, ids []NodeID) ([][]byte, error) {
		out := make([][]byte, len(ids))
		for i, id := range ids {
			h, ok := stored[id]
			if !ok {
				return nil, fmt.Errorf("tree node (level %d, index %d) is missing: %w", id.Level, id.Index, errdefs.ErrInternal)
			}
			out[i] = h
		}
		return out, nil
	}
	var v TreeVerifier
	err = v.Add(ctx, recs, read)
	var ce *ChainError
	if !errors.As(err, &ce) || ce.Kind != ChainTreeMismatch || ce.Seq != n {
		t.Fatalf("Add = %v; want a tree mismatch at record %d", err, n)
	}
}
