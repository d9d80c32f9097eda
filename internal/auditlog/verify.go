package auditlog

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"errors"
	"fmt"
	"sort"
	"time"

	"github.com/signerd/signerd/internal/errdefs"
	"github.com/signerd/signerd/internal/store"
)

// Log is the audit log as Verify reads it. store.Store satisfies it, and so
// does a *boltstore.Store opened read-only on a copy of the database.
type Log interface {
	// VerifyAudit checks the chain and its recorded head: nil or a
	// *store.ChainError.
	VerifyAudit(ctx context.Context) error
	// AuditHead returns the recorded head.
	AuditHead(ctx context.Context) (seq uint64, hash []byte, err error)
	// ListAudit returns records with Seq > since, at most limit.
	ListAudit(ctx context.Context, since uint64, limit int) ([]store.AuditRecord, error)
	// ListCheckpoints returns every checkpoint.
	ListCheckpoints(ctx context.Context) ([]store.Checkpoint, error)
}

// TreeLog is a Log that also serves the transparency log's roots
// (store.Store and *boltstore.Store do); Verify checks checkpoint notes
// against it.
type TreeLog interface {
	LogRoot(ctx context.Context, size uint64) ([]byte, error)
}

// Report is what Verify learned about the log, filled as far as it got.
type Report struct {
	// HeadSeq and HeadHash are the recorded head of the log.
	HeadSeq  uint64
	HeadHash []byte
	// Checkpoints is how many checkpoints the log holds.
	Checkpoints int
	// Latest is the newest checkpoint that verified and matched the chain;
	// nil if none did. Records after Latest.Seq are protected by the chain
	// alone until the next checkpoint.
	Latest *store.Checkpoint
	// State is the security state's comparison with Latest (CheckState);
	// nil when the log cannot read the state or the chain is damaged.
	State *StateReport
}

// Verify checks the whole audit log against the audit key pub:
//
//  1. the chain, with log.VerifyAudit (edited, inserted, deleted, reordered
//     records, and a head that does not match the last record);
//  2. every checkpoint's key fingerprint and signature (a forged or altered
//     checkpoint: store.ChainBadCheckpoint or store.ChainWrongCheckpointKey
//     at the checkpoint's seq);
//  3. every checkpoint within the verified part of the chain against the
//     record at its seq: a different hash means the chain was rewritten
//     and re-hashed after it was checkpointed, which the chain alone cannot
//     show. The rewrite began after the newest checkpoint that still
//     matches, so the error is store.ChainEdited at that checkpoint's
//     seq + 1, the first record that can differ (the exact record when
//     checkpoints are consecutive);
//  4. no checkpoint beyond the log's head: a log cut below a checkpoint is
//     store.ChainDeleted at head + 1, even when the head was moved back to
//     hide the cut;
//     4b. every checkpoint's signed note (when it has one) against the tree:
//     its size must be the checkpoint's seq, its state line the
//     checkpoint's state digest, and its root the log's root of that size
//     (a TreeLog's LogRoot, which VerifyAudit has shown is the root of the
//     records): another root is store.ChainTreeRewritten at that size;
//  5. when the log can read the security state (a StateLog) and 1–4 found
//     nothing: the state against the newest good checkpoint's state digest
//     (CheckState): store.ChainStateUnexplained for a state no checkpoint
//     and no record explains.
//
// It returns the report and nil, a *store.ChainError for the damage with
// the lowest seq (the first bad record), or another error if the log could
// not be read. A log with no checkpoints passes on its chain alone.
func Verify(ctx context.Context, log Log, pub *ecdsa.PublicKey) (Report, error) {
	var rep Report
	if pub == nil {
		return rep, fmt.Errorf("no audit public key to check checkpoints with: %w", errdefs.ErrInvalidArgument)
	}
	var chainErr *store.ChainError
	if err := log.VerifyAudit(ctx); err != nil && !errors.As(err, &chainErr) {
		return rep, err
	}
	head, headHash, err := log.AuditHead(ctx)
	if err != nil {
		return rep, err
	}
	rep.HeadSeq, rep.HeadHash = head, headHash
	// Records 1..intact form a verified chain.
	intact := head
	if chainErr != nil {
		intact = 0
		if chainErr.Seq > 0 {
			intact = chainErr.Seq - 1
		}
	}

	var cpErr *store.ChainError
	cps, err := log.ListCheckpoints(ctx)
	if err != nil && !errors.As(err, &cpErr) {
		return rep, err
	}
	rep.Checkpoints = len(cps)
	sort.SliceStable(cps, func(i, j int) bool { return cps[i].Seq < cps[j].Seq })
	var matched uint64 // the newest checkpoint seq that matched the chain
	for i, c := range cps {
		if err := VerifyCheckpoint(pub, c); err != nil {
			var ce *store.ChainError
			errors.As(err, &ce)
			cpErr = earliest(cpErr, ce)
			break
		}
		if c.Seq > intact {
			if chainErr == nil {
				cpErr = earliest(cpErr, &store.ChainError{Seq: head + 1, Kind: store.ChainDeleted,
					Message: fmt.Sprintf("the log ends at record %d, but the checkpoint of %s covers records up to %d: records %d to %d were removed",
						head, stamp(c.Time), c.Seq, head+1, c.Seq)})
				break
			}
			continue // past the broken part of the chain: nothing to compare with
		}
		recs, err := log.ListAudit(ctx, c.Seq-1, 1)
		if err != nil {
			return rep, err
		}
		if len(recs) == 0 || recs[0].Seq != c.Seq {
			cpErr = earliest(cpErr, &store.ChainError{Seq: c.Seq, Kind: store.ChainDeleted,
				Message: fmt.Sprintf("record %d, covered by the checkpoint of %s, is missing", c.Seq, stamp(c.Time))})
			break
		}
		if !bytes.Equal(recs[0].Hash, c.Hash) {
			msg := fmt.Sprintf("record %d is not the one the checkpoint of %s signed: it was edited and the chain re-hashed", c.Seq, stamp(c.Time))
			if matched+1 < c.Seq {
				msg = fmt.Sprintf("record %d is not the one the checkpoint of %s signed: the chain was rewritten and re-hashed from a record between %d and %d (the checkpoint at %d still matches)",
					c.Seq, stamp(c.Time), matched+1, c.Seq, matched)
				if matched == 0 {
					msg = fmt.Sprintf("record %d is not the one the checkpoint of %s signed: the chain was rewritten and re-hashed from a record between 1 and %d",
						c.Seq, stamp(c.Time), c.Seq)
				}
			}
			cpErr = earliest(cpErr, &store.ChainError{Seq: matched + 1, Kind: store.ChainEdited, Message: msg})
			break
		}
		if err := checkNoteRoot(ctx, log, c); err != nil {
			var ce *store.ChainError
			if !errors.As(err, &ce) {
				return rep, err
			}
			cpErr = earliest(cpErr, ce)
			break
		}
		matched = c.Seq
		rep.Latest = &cps[i]
	}
	if e := earliest(chainErr, cpErr); e != nil {
		return rep, e
	}
	if sl, ok := log.(StateLog); ok {
		st, err := CheckState(ctx, sl, rep.Latest)
		rep.State = &st
		if err != nil {
			return rep, err
		}
	}
	return rep, nil
}

// earliest returns the problem with the lower seq (a on a tie: the chain's
// own finding is the more specific), or nil if both are nil.
func earliest(a, b *store.ChainError) *store.ChainError {
	switch {
	case a == nil:
		return b
	case b == nil || a.Seq <= b.Seq:
		return a
	}
	return b
}

func stamp(t time.Time) string { return t.UTC().Format(time.RFC3339) }
