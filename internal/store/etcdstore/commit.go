package etcdstore

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/signerd/signerd/internal/errdefs"
	"github.com/signerd/signerd/internal/store"
)

// Group commit limits. etcd refuses a transaction with more than 128
// operations per branch (--max-txn-ops) or larger than 1.5 MiB
// (--max-request-bytes) by default; a batch of maxBatch writes uses at most
// 2*maxBatch+2 puts (head and tree nodes: tree.go) and 2*maxBatch+1
// compares (one per record, the head's, and one per signing key:
// signers.go).
const (
	maxBatch      = 60
	maxBatchBytes = 512 << 10
)

// attemptTimeout bounds each request of a write (see commit).
const attemptTimeout = 2 * time.Second

// write is one audited state change queued for the committer.
type write struct {
	ctx context.Context
	ev  store.AuditEvent // validated, UTC
	// A batchable write (PutSignature, AppendAudit) has no prepare: it
	// only appends, so any number of them share a transaction. sig is the
	// encoded signature record to store with the audit record (nil for
	// AppendAudit), under digest.
	sig    string
	digest []byte
	// signer and version name the key version that made sig: the
	// committer refuses the record if it is revoked (signers.go).
	signer  string
	version uint32
	// An exclusive write (every other change) reads what it depends on and
	// returns the compares that keep that valid and the operations that
	// make the change; it is committed alone. It must compare everything
	// it read: its transaction is sent again as prepared while only the
	// audit head moves, and prepared again once one of those compares
	// fails, so a refusal (ErrAlreadyExists, …) is always decided on
	// current state.
	prepare func(ctx context.Context) ([]clientv3.Cmp, []clientv3.Op, error)
	// result is what an exclusive write's prepare decided beyond its
	// audit record (the grants a trust removal names, the reason a
	// revocation escalated from): prepare sets it, and once the write is
	// answered it is the committed attempt's, which an attempt whose
	// outcome was unknown makes not necessarily the last prepared.
	result any

	rec  store.AuditRecord // the committed audit record
	done chan error
}

func (w *write) size() int { return len(w.sig) + 512 }

// head is the audit chain's head as the committer last saw it. rev is the
// mod revision of the head key (0: absent, an empty log); known is false
// when it must be read again.
type head struct {
	known bool
	seq   uint64
	hash  []byte
	rev   int64
	tree  [][]byte // the transparency log's compact range (tree.go)
}

// headValue is the JSON of the audit/head key.
type headValue struct {
	Seq  uint64 `json:"seq"`
	Hash []byte `json:"hash"`
	// Tree is the transparency log's compact range (tree.go): the tree
	// moves with the head, in the same compare-and-swap.
	Tree [][]byte `json:"tree,omitempty"`
}

var errClosed = fmt.Errorf("etcd store closed: %w", errdefs.ErrUnavailable)

// submit queues w and waits until it is committed or refused. As with
// boltstore's group commit, a write that has been taken into a transaction
// is waited for even if w.ctx ends: its outcome is then known.
func (s *Store) submit(w *write) error {
	if err := w.ctx.Err(); err != nil {
		return err
	}
	w.done = make(chan error, 1)
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return errClosed
	}
	s.queue = append(s.queue, w)
	s.mu.Unlock()
	select {
	case s.kick <- struct{}{}:
	default:
	}
	return <-w.done
}

// run is the committer goroutine.
func (s *Store) run() {
	defer close(s.stopped)
	for {
		select {
		case <-s.kick:
		case <-s.stop:
			s.mu.Lock()
			q := s.queue
			s.queue = nil
			s.mu.Unlock()
			for _, w := range q {
				w.done <- errClosed
			}
			return
		}
		for {
			s.awaitTurn()
			ws := s.take()
			if len(ws) == 0 {
				break
			}
			s.commit(ws)
		}
	}
}

// take removes the next transaction's writes from the queue: one exclusive
// write, or consecutive batchable ones up to the limits. Writes whose
// context ended while queued are answered with its error.
func (s *Store) take() []*write {
	s.mu.Lock()
	defer s.mu.Unlock()
	var ws []*write
	bytes := 0
	i := 0
	for ; i < len(s.queue); i++ {
		w := s.queue[i]
		if err := w.ctx.Err(); err != nil {
			w.done <- err
			continue
		}
		if w.prepare != nil {
			if len(ws) == 0 {
				ws = append(ws, w)
				i++
			}
			break
		}
		if len(ws) == maxBatch || (len(ws) > 0 && bytes+w.size() > maxBatchBytes) {
			break
		}
		ws = append(ws, w)
		bytes += w.size()
	}
	s.queue = s.queue[i:]
	return ws
}

// attempt is a transaction whose outcome was not reported (the member died,
// a timeout): its first record identifies it.
type attempt struct {
	recs []store.AuditRecord
	// guards: the mod revision each signing key was compared with.
	guards map[string]int64
	// result: the exclusive write's, as prepared for this attempt.
	result any
}

// commit commits ws in one transaction (see doc.go), retrying on a moved
// head, and answers every write.
func (s *Store) commit(ws []*write) {
	start := time.Now()
	ctx, cancel := s.commitContext(ws)
	defer cancel()
	answer := func(recs []store.AuditRecord, err error) {
		for i, w := range ws {
			if err == nil {
				w.rec = recs[i]
			}
			w.done <- err
		}
	}
	exclusive := ws[0].prepare
	var (
		pending []attempt
		lastErr error
		pause   = 5 * time.Millisecond
		// refusedAt is the head revision at which an exclusive write
		// was refused while attempts were pending (-1: never).
		refusedAt int64 = -1
		// prepared is the exclusive write's compares and operations,
		// kept while only the head moves: they compare everything the
		// prepare read, so they stay right until one of those keys
		// changes, which the transaction finds. Preparing again after
		// every conflict made a prepare slower than another replica's
		// appends (a trust removal reading hundreds of child orgs) lose
		// to them until the write timed out. reused says the attempt
		// sent them again.
		prepared *preparedTxn
		reused   bool
	)
	// Each request gets at most attemptTimeout: a proposal that reached a
	// leader which then died is not answered until etcd's own request
	// timeout (5s + 2 election timeouts); giving up on it earlier and
	// resolving is safe (every transaction is guarded by the head) and
	// lets the write go through the new leader as soon as there is one.
	var cancels []context.CancelFunc
	defer func() {
		for _, c := range cancels {
			c()
		}
	}()
	attemptCtx := func() context.Context {
		actx, cancel := context.WithTimeout(ctx, attemptTimeout)
		cancels = append(cancels, cancel)
		return actx
	}
	// wait backs off before the next try (the loop then checks ctx).
	wait := func(err error) {
		lastErr = err
		t := time.NewTimer(pause/2 + rand.N(pause))
		defer t.Stop()
		pause = min(2*pause, 500*time.Millisecond)
		select {
		case <-ctx.Done():
		case <-t.C:
		}
	}
	for {
		if err := ctx.Err(); err != nil {
			if lastErr == nil {
				lastErr = err
			}
			msg := "not committed"
			if len(pending) > 0 {
				msg = "outcome unknown (the etcd cluster did not confirm the transaction)"
			}
			answer(nil, fmt.Errorf("etcd write %s: %w", msg, errors.Join(errdefs.ErrUnavailable, lastErr)))
			return
		}
		if !s.head.known {
			if err := s.readHead(attemptCtx()); err != nil {
				if errors.Is(err, errdefs.ErrInternal) { // an unreadable head
					answer(nil, err)
					return
				}
				wait(err)
				continue
			}
		}
		if len(pending) > 0 {
			done, a, err := s.resolve(attemptCtx(), &pending)
			if err != nil {
				s.head.known = false
				wait(err)
				continue
			}
			if done {
				s.log.Info("etcd transaction with an unknown outcome had committed", "first_seq", a.recs[0].Seq, "records", len(a.recs))
				if exclusive != nil {
					ws[0].result = a.result
				}
				answer(a.recs, nil)
				return
			}
		}

		var cmps []clientv3.Cmp
		var ops []clientv3.Op
		// A batch's signature records: refuse those whose key version
		// is revoked, and guard the keys of the others (signers.go).
		var signers []string
		var refresh []clientv3.Op
		if exclusive == nil {
			signers = signerNames(ws)
			if err := s.guardSigners(attemptCtx(), signers); err != nil {
				if retryable(err) {
					wait(err)
					continue
				}
				answer(nil, err)
				return
			}
			if len(pending) > 0 && slices.ContainsFunc(ws, s.revokedWrite) {
				// A safeguard: a write is never refused while a
				// transaction holding it may still commit; the head
				// decides that (resolve, which already drops attempts
				// whose keys have moved).
				wait(fmt.Errorf("a signing key was revoked while a transaction's outcome is unknown: %w", errdefs.ErrUnavailable))
				continue
			}
			if live := s.refuseRevoked(ws); len(live) != len(ws) {
				if ws = live; len(ws) == 0 {
					return
				}
				signers = signerNames(ws)
			}
			cmps, refresh = s.signerCompares(signers)
		}
		if exclusive != nil && prepared != nil && len(pending) == 0 {
			cmps, ops, reused = slices.Clip(prepared.cmps), slices.Clip(prepared.ops), true
		} else if exclusive != nil {
			reused = false
			c, o, err := exclusive(attemptCtx())
			if err != nil {
				if retryable(err) {
					wait(err)
					continue
				}
				if len(pending) > 0 && refusedAt != s.head.rev {
					// An earlier attempt of this very write, its
					// outcome unknown, may have committed after the
					// head was read and so made this refusal ("already
					// revoked"): read the head again and resolve. If
					// the head has not moved by then, the refusal
					// stands: the attempt had not committed before
					// prepare read, and what prepare read has changed
					// since the attempt's compares, so it never will.
					refusedAt = s.head.rev
					s.head.known = false
					continue
				}
				answer(nil, err)
				return
			}
			prepared = &preparedTxn{cmps: c, ops: o, result: ws[0].result}
			cmps, ops = slices.Clip(c), slices.Clip(o)
		}
		recs := make([]store.AuditRecord, len(ws))
		seq, prev := s.head.seq, s.head.hash
		for i, w := range ws {
			seq++
			r := store.AuditRecord{Seq: seq, PrevHash: prev, AuditEvent: w.ev}
			r.Hash = store.HashAuditRecord(r)
			raw, err := encode(r)
			if err != nil {
				answer(nil, err)
				return
			}
			recs[i], prev = r, r.Hash
			cmps = append(cmps, clientv3.Compare(clientv3.CreateRevision(s.l.record(seq)), "=", 0))
			ops = append(ops, clientv3.OpPut(s.l.record(seq), raw))
			if w.sig != "" {
				ops = append(ops, clientv3.OpPut(s.l.signature(w.digest, seq), w.sig))
			}
		}
		tree, treeOp, err := s.appendTree(recs)
		if err != nil {
			answer(nil, err)
			return
		}
		ops = append(ops, treeOp)
		hv, err := encode(headValue{Seq: seq, Hash: prev, Tree: tree})
		if err != nil {
			answer(nil, err)
			return
		}
		cmps = append(cmps, clientv3.Compare(clientv3.ModRevision(s.l.head()), "=", s.head.rev))
		ops = append(ops, clientv3.OpPut(s.l.head(), hv))

		s.cont.txns.Add(1)
		sent := time.Now()
		resp, err := s.cli.Txn(attemptCtx()).If(cmps...).Then(ops...).Else(append([]clientv3.Op{clientv3.OpGet(s.l.head())}, refresh...)...).Commit()
		if err != nil {
			// It may have committed: find out before chaining anything
			// else to the head (resolve).
			s.log.Warn("etcd transaction failed; finding out whether it committed", "first_seq", recs[0].Seq, "err", err)
			s.cont.unknown.Add(1)
			g := make(map[string]int64, len(signers))
			for _, n := range signers {
				g[n] = s.guards[n].rev
			}
			pending = append(pending, attempt{recs: recs, guards: g, result: prepared.resultOf()})
			s.head.known = false
			wait(mapErr("write", err))
			continue
		}
		if resp.Succeeded {
			if exclusive != nil {
				ws[0].result = prepared.result
			}
			s.turn.committed(s.head.rev, resp.Header.Revision, time.Since(sent))
			s.head = head{known: true, seq: seq, hash: prev, rev: resp.Header.Revision, tree: tree}
			s.commits.Add(1)
			s.cont.committed.Add(1)
			s.cont.records.Add(uint64(len(recs)))
			s.cont.commitNS.Add(uint64(time.Since(start)))
			answer(recs, nil)
			return
		}
		// A compare failed: the head moved (another replica appended), or
		// what an exclusive write read changed, or a signing key's record
		// changed, or the log is damaged.
		before := s.head
		if err := s.setHead(resp.Responses[0].GetResponseRange().GetKvs()); err != nil {
			answer(nil, err)
			return
		}
		keyChanged, err := s.refreshSigners(signers, resp.Responses[1:])
		if err != nil {
			answer(nil, err)
			return
		}
		if s.head.rev != before.rev {
			s.cont.conflicts.Add(1)
		}
		if s.head.rev == before.rev && !keyChanged {
			s.cont.refused.Add(1)
			if prepared != nil {
				prepared = nil
				if reused {
					// What the exclusive write read changed since it
					// prepared (besides the head it lost to before):
					// prepare again at once.
					continue
				}
			}
			kv, err := s.get(attemptCtx(), s.l.record(s.head.seq+1))
			if err != nil {
				s.head.known = false
				wait(err)
				continue
			}
			if kv != nil {
				// Overwriting it would destroy the evidence (as boltstore).
				answer(nil, fmt.Errorf("audit log damaged: a record already exists at seq %d, past the head (run audit verify): %w",
					s.head.seq+1, errdefs.ErrInternal))
				return
			}
			// What the write read changed (written outside signerd?):
			// prepare it again, without hammering the cluster.
			wait(fmt.Errorf("etcd keys guarded by the transaction kept changing: %w", errdefs.ErrUnavailable))
		}
	}
}

// preparedTxn is what an exclusive write's prepare returned, and the
// result it set (write.result) for the attempts that send it.
type preparedTxn struct {
	cmps   []clientv3.Cmp
	ops    []clientv3.Op
	result any
}

// resultOf is p's result; nil for a batch (no preparation).
func (p *preparedTxn) resultOf() any {
	if p == nil {
		return nil
	}
	return p.result
}

// commitContext bounds a transaction: at most the write timeout, less if
// every writer's deadline is earlier (then the latest of them: one
// impatient caller does not make the others give up). An exclusive write
// is also canceled with its caller; a batch is not.
func (s *Store) commitContext(ws []*write) (context.Context, context.CancelFunc) {
	limit := time.Now().Add(s.writeTO)
	var latest time.Time
	for _, w := range ws {
		d, ok := w.ctx.Deadline()
		if !ok {
			latest = limit
			break
		}
		if d.After(latest) {
			latest = d
		}
	}
	if latest.After(limit) {
		latest = limit
	}
	parent := context.Background()
	if len(ws) == 1 {
		parent = ws[0].ctx
	}
	return context.WithDeadline(parent, latest)
}

// readHead reads the audit head into s.head.
func (s *Store) readHead(ctx context.Context) error {
	resp, err := s.cli.Get(ctx, s.l.head())
	if err != nil {
		return mapErr("read audit head", err)
	}
	return s.setHead(resp.Kvs)
}

// setHead sets s.head from the head key as read (none: an empty log).
func (s *Store) setHead(kvs []*mvccpb.KeyValue) error {
	if len(kvs) == 0 {
		s.head = head{known: true, seq: 0, hash: store.GenesisHash(), rev: 0}
		return nil
	}
	h, err := decodeHead(kvs[0].Value)
	if err != nil {
		return err
	}
	s.head = head{known: true, seq: h.Seq, hash: h.Hash, rev: kvs[0].ModRevision, tree: h.Tree}
	return nil
}

func decodeHead(raw []byte) (headValue, error) {
	h, err := decodeValue[headValue]("audit head", raw)
	if err != nil {
		return h, err
	}
	if len(h.Hash) != store.AuditHashSize {
		return h, fmt.Errorf("audit head hash is %d bytes, want %d: %w", len(h.Hash), store.AuditHashSize, errdefs.ErrInternal)
	}
	return h, nil
}

// resolve decides the pending attempts that the head has passed: an
// attempt committed if the record at its first seq is its own (same
// hash); if another record is there, it did not and never will (it was
// guarded by a head that has moved). Attempts beyond the head stay
// pending. done reports a committed attempt, returned.
func (s *Store) resolve(ctx context.Context, pending *[]attempt) (done bool, committed attempt, err error) {
	var keep []attempt
	for _, a := range *pending {
		first := a.recs[0]
		if first.Seq > s.head.seq {
			// Not committed as of the head; a key it compared has moved
			// since (mod revisions only grow): it never will.
			if !a.staleGuard(s.guards) {
				keep = append(keep, a)
			}
			continue
		}
		kv, err := s.get(ctx, s.l.record(first.Seq))
		if err != nil {
			return false, attempt{}, err
		}
		if kv != nil {
			if r, err := decode[store.AuditRecord](kv); err == nil && bytes.Equal(r.Hash, first.Hash) {
				return true, a, nil
			}
		}
	}
	*pending = keep
	return false, attempt{}, nil
}

// retryable reports an error worth retrying within the write timeout: the
// cluster was unreachable or busy, not a refusal.
func retryable(err error) bool {
	return errors.Is(err, errdefs.ErrUnavailable) && !errors.Is(err, context.Canceled)
}

// staleGuard reports whether a signing key a compared has moved since, as
// the committer's guards (now) say: a cannot commit any more, since a key's
// mod revision only grows (signerd never deletes a key record). The guards
// are refreshed from the same read as the head (a failed batch's Else), so
// an attempt that did commit before that read is seen at or below the head
// and resolved by its record instead.
func (a attempt) staleGuard(now map[string]signerGuard) bool {
	for n, rev := range a.guards {
		if g, ok := now[n]; ok && g.rev != rev {
			return true
		}
	}
	return false
}
