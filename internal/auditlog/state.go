package auditlog

import (
	"bytes"
	"context"
	"encoding/hex"
	"fmt"

	"github.com/signerd/signerd/internal/store"
)

// StateLog is a Log that can also read the security state (store.Store and
// a read-only *boltstore.Store are both).
type StateLog interface {
	Log
	store.StateReader
}

// StateReport is what CheckState found.
type StateReport struct {
	// Digest is store.StateDigest of the state as it is now.
	Digest []byte
	// VouchedAt is the seq of the checkpoint the state was compared with,
	// 0 if no checkpoint carries a state digest (a database from before
	// state digests, not yet opened by a signerd that signs them).
	VouchedAt     uint64
	VouchedDigest []byte
	// ChangesAfter counts the audit records after that checkpoint that
	// change the state: until the next checkpoint, the state they made is
	// vouched for by the chain alone.
	ChangesAfter int
}

// Matches reports whether the state is the one a checkpoint vouches for.
func (r StateReport) Matches() bool {
	return r.VouchedAt > 0 && bytes.Equal(r.Digest, r.VouchedDigest)
}

// CheckState compares the security state with latest, the newest
// checkpoint that verified and matched the chain (nil if none):
//
//   - latest carries a state digest equal to the state's: vouched;
//   - it differs, and audit records after latest change the state: the
//     state is recorded but vouched for by the chain alone until the next
//     checkpoint (StateReport.ChangesAfter), not an error;
//   - it differs and no record since explains it: a *store.ChainError of
//     kind store.ChainStateUnexplained: written behind the daemon's back;
//   - no checkpoint carries a digest: nothing vouches yet, not an error,
//     unless a record after latest says vouching began (a baseline or an
//     accepted state), which means the checkpoints after it were removed:
//     store.ChainStateUnexplained at that record.
func CheckState(ctx context.Context, log StateLog, latest *store.Checkpoint) (StateReport, error) {
	var rep StateReport
	digest, err := store.StateDigest(ctx, log)
	if err != nil {
		return rep, err
	}
	rep.Digest = digest
	var since uint64
	if latest != nil {
		since = latest.Seq
	}
	var began *store.AuditRecord
	const chunk = 1024
	for {
		recs, err := log.ListAudit(ctx, since, chunk)
		if err != nil {
			return rep, err
		}
		for i, r := range recs {
			if store.ChangesState(r) {
				rep.ChangesAfter++
			}
			if began == nil && (r.Operation == store.OpStateBaseline || r.Operation == store.OpStateAccept) {
				began = &recs[i]
			}
		}
		if len(recs) < chunk || recs[len(recs)-1].Seq <= since {
			break
		}
		since = recs[len(recs)-1].Seq
	}
	if latest == nil || len(latest.StateDigest) == 0 {
		if began != nil {
			return rep, &store.ChainError{Seq: began.Seq, Kind: store.ChainStateUnexplained,
				Message: fmt.Sprintf("record %d (%s) began vouching for the security state, but no checkpoint after it carries a state digest: the checkpoints that did were removed (state now %s)",
					began.Seq, began.Operation, shortHex(digest))}
		}
		return rep, nil
	}
	rep.VouchedAt, rep.VouchedDigest = latest.Seq, latest.StateDigest
	if rep.Matches() || rep.ChangesAfter > 0 {
		return rep, nil
	}
	return rep, &store.ChainError{Seq: latest.Seq, Kind: store.ChainStateUnexplained,
		Message: fmt.Sprintf("the security state (digest %s) is not the one the checkpoint at record %d vouches for (%s), and no audit record since changes it: trust, grants, policy or keys were written behind the daemon's back",
			hex.EncodeToString(digest), latest.Seq, hex.EncodeToString(latest.StateDigest))}
}

func shortHex(b []byte) string {
	s := hex.EncodeToString(b)
	if len(s) > 16 {
		return s[:16] + "…"
	}
	return s
}
