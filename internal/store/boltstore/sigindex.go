package boltstore

// The digest index of signature records (schema 5).
//
// A signature record is appended under its audit seq (sigrecords/), which
// only ever writes the last page of that bucket. Finding a digest's
// records needs an index keyed by the digest, and a random key written in
// the signing transaction dirties a leaf and a branch page per signature:
// with the record itself under a digest key (schema 4) that was about half
// of a durable commit's CPU (BenchmarkPutSignatureFilled). So the index is
// log-structured. The records appended after the persisted index's
// watermark (meta/sigindex_mark) are indexed in memory (pendingIndex); a
// merge, once enough have gathered, writes their entries into sigindex/
// sorted and in chunks, many to a page, and then moves the watermark.
//
// The records are the truth and the index only says where they are: Open
// rebuilds the pending entries from the records after the watermark, so a
// crash at any point loses nothing (an entry written twice is the same key
// with the same empty value), and a reader looks in sigindex/ and in the
// pending entries and reads each key once.

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/signerd/signerd/internal/errdefs"
	"github.com/signerd/signerd/internal/store"
)

const (
	// defaultMergeAt is how many pending entries start a merge. It bounds
	// the memory of the pending index (about 100 bytes an entry) and the
	// records Open reads back after a crash; the larger it is, the more
	// entries share each index page a merge writes. 32,768 rather than
	// 8,192: BenchmarkPutSignatureFilled, 100,000 signatures stored,
	// 27.5–28.9 → 20.3–20.6 µs of CPU a signature, 440 → 310 pages a
	// commit; Open reads back the throttle's bound of 131,072 records in
	// about 0.1 s (BenchmarkOpenPending), and up to twice that after
	// merges failed.
	defaultMergeAt = 32768
	// defaultMergeChunk is how many entries one merge transaction writes.
	// The entries are sorted, so a chunk is a narrow range of the index;
	// the bound keeps each transaction, which holds bbolt's writer lock
	// and so delays signing commits, short.
	defaultMergeChunk = 2048
	// throttleFactor × the merge threshold is the most entries pending
	// before a signer waits for the running merge: signatures can arrive
	// faster than a merge writes them (a slow disk), and the pending index
	// is memory and the work of the next Open.
	throttleFactor = 4
	// maxMergeScan bounds the entries one merge reads into memory; a
	// larger backlog (only possible after failed merges) takes several.
	maxMergeScan = 1 << 18
)

// pendingIndex is the in-memory part of the digest index: digest → seqs of
// records after the watermark. Entries at or below the watermark may linger
// (a signer that adds its entry after a merge already read its record);
// readers dedupe and the next merge prunes them.
type pendingIndex struct {
	mu   sync.Mutex
	seqs map[[store.DigestSize]byte][]uint64
	n    int
	peak int // the most entries ever pending (TestSignatureIndexBound)
}

// add records that the record of digest is at seq and returns how many
// entries are pending.
func (p *pendingIndex) add(digest []byte, seq uint64) int {
	var d [store.DigestSize]byte
	copy(d[:], digest)
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.seqs == nil {
		p.seqs = make(map[[store.DigestSize]byte][]uint64)
	}
	p.seqs[d] = append(p.seqs[d], seq)
	p.n++
	p.peak = max(p.peak, p.n)
	return p.n
}

// len returns how many entries are pending.
func (p *pendingIndex) len() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.n
}

// keys returns the signatureKey of every pending entry of digest, sorted.
func (p *pendingIndex) keys(digest []byte) [][]byte {
	var d [store.DigestSize]byte
	copy(d[:], digest)
	p.mu.Lock()
	seqs := slices.Clone(p.seqs[d])
	p.mu.Unlock()
	out := make([][]byte, len(seqs))
	for i, seq := range seqs {
		out[i] = signatureKey(digest, seq)
	}
	slices.SortFunc(out, bytes.Compare)
	return out
}

// allKeys returns the signatureKey of every pending entry, sorted.
func (p *pendingIndex) allKeys() [][]byte {
	p.mu.Lock()
	out := make([][]byte, 0, p.n)
	for d, seqs := range p.seqs {
		for _, seq := range seqs {
			out = append(out, signatureKey(d[:], seq))
		}
	}
	p.mu.Unlock()
	slices.SortFunc(out, bytes.Compare)
	return out
}

// prune drops the entries at or below mark, which the persisted index
// holds.
func (p *pendingIndex) prune(mark uint64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for d, seqs := range p.seqs {
		kept := slices.DeleteFunc(seqs, func(seq uint64) bool { return seq <= mark })
		p.n -= len(seqs) - len(kept)
		if len(kept) == 0 {
			delete(p.seqs, d)
		} else {
			p.seqs[d] = kept
		}
	}
}

// readMark returns the index watermark: every record in sigrecords/ at or
// below it has its sigindex/ entry. Absent (no merge yet) is 0.
func readMark(meta *bolt.Bucket) (uint64, error) {
	raw := meta.Get(keySigIndexMark)
	if raw == nil {
		return 0, nil
	}
	if len(raw) != 8 {
		return 0, fmt.Errorf("signature index watermark is %d bytes: %w", len(raw), errdefs.ErrInternal)
	}
	return binary.BigEndian.Uint64(raw), nil
}

// recordSeq parses a sigrecords/ key.
func recordSeq(k []byte) (uint64, error) {
	if len(k) != 8 {
		return 0, fmt.Errorf("signature record key %x is not a seq (run audit verify): %w", k, errdefs.ErrInternal)
	}
	return binary.BigEndian.Uint64(k), nil
}

// recordDigest returns the digest of an encoded signature record. The
// encoder writes the digest first, so the common case is a prefix and 44
// base64 characters; anything else goes through json.Unmarshal.
func recordDigest(raw []byte) ([]byte, error) {
	const prefix = `{"digest":"`
	const b64 = (store.DigestSize + 2) / 3 * 4
	if len(raw) > len(prefix)+b64 && bytes.HasPrefix(raw, []byte(prefix)) && raw[len(prefix)+b64] == '"' {
		d := make([]byte, store.DigestSize)
		if n, err := base64.StdEncoding.Decode(d, raw[len(prefix):len(prefix)+b64]); err == nil && n == store.DigestSize {
			return d, nil
		}
	}
	var rec struct {
		Digest []byte `json:"digest"`
	}
	if err := json.Unmarshal(raw, &rec); err != nil {
		return nil, fmt.Errorf("decode signature record: %w", errors.Join(errdefs.ErrInternal, err))
	}
	if len(rec.Digest) != store.DigestSize {
		return nil, fmt.Errorf("signature record has a %d-byte digest: %w", len(rec.Digest), errdefs.ErrInternal)
	}
	return rec.Digest, nil
}

// unindexed returns the signatureKey of each record after the watermark
// (at most limit), and the seq of the last one; hi is the watermark itself
// if there is none. A file from before schema 5 has none. A record whose
// digest cannot be read is an error, unless skip is set: then skip is told
// and the record left out.
func unindexed(tx *bolt.Tx, limit int, skip func(seq uint64, err error)) (keys [][]byte, mark, hi uint64, err error) {
	recs := recordsBucket(tx)
	if recs == nil {
		return nil, 0, 0, nil
	}
	meta, err := bucket(tx, bucketKeyMeta)
	if err != nil {
		return nil, 0, 0, err
	}
	if mark, err = readMark(meta); err != nil {
		return nil, 0, 0, err
	}
	hi = mark
	c := recs.Cursor()
	for k, v := c.Seek(seqKey(mark + 1)); k != nil && len(keys) < limit; k, v = c.Next() {
		seq, err := recordSeq(k)
		if err != nil {
			return nil, 0, 0, err
		}
		hi = seq
		digest, err := recordDigest(v)
		if err != nil {
			err = fmt.Errorf("signature record %d is damaged (run audit verify): %w", seq, err)
			if skip == nil {
				return nil, 0, 0, err
			}
			skip(seq, err)
			continue
		}
		keys = append(keys, signatureKey(digest, seq))
	}
	return keys, mark, hi, nil
}

// loadPending fills the pending index from the records after the
// watermark: those a merge had not reached when the store was last closed.
// A damaged record there fails a read-write open (signing on would leave it
// out of the index for good); a read-only open, which is how a damaged
// file is examined, logs it and goes on without it.
func (s *Store) loadPending() error {
	var skip func(uint64, error)
	if s.readOnly {
		skip = func(seq uint64, err error) {
			s.log.Warn("signature record left out of the digest index", "seq", seq, "err", err)
		}
	}
	return s.w.view(s.db, func(tx *bolt.Tx) error {
		keys, _, _, err := unindexed(tx, math.MaxInt, skip)
		if err != nil {
			return err
		}
		for _, k := range keys {
			seq, _ := loggedSeq(k)
			s.idx.add(k[:store.DigestSize], seq)
		}
		return nil
	})
}

// maybeMerge starts a merge in the background if enough entries are
// pending and none is running. After a failed merge the next waits for
// another defaultMergeAt entries, so a full disk does not turn every
// signature into a merge attempt.
func (s *Store) maybeMerge(pending int) {
	s.mergeMu.Lock()
	defer s.mergeMu.Unlock()
	if pending >= s.mergeAt {
		s.startMergeLocked()
	}
}

// startMergeLocked starts a merge unless one runs or the store is
// closing, and returns the channel closed when the running merge ends
// (nil if none). s.mergeMu must be held.
func (s *Store) startMergeLocked() chan struct{} {
	if s.merging {
		return s.mergeDone
	}
	if s.closed {
		return nil
	}
	s.merging = true
	done := make(chan struct{})
	s.mergeDone = done
	s.mergeWG.Add(1)
	go func() {
		defer s.mergeWG.Done()
		defer close(done)
		// No call's recovery covers this goroutine: damage the merge
		// meets (a fault in the memory map, bbolt's panic on a page it
		// cannot read) fails the merge, as a failing disk does (the
		// entries stay in memory, and signing is refused at the bound),
		// instead of ending the process.
		err := Guard(s.path, s.mergeIndex)
		s.mergeMu.Lock()
		s.merging = false
		s.mergeErr = err
		if err != nil {
			s.mergeAt = s.idx.len() + s.mergeAtBase
			s.merges.failed.Add(1)
		} else {
			s.mergeAt = s.mergeAtBase
			s.merges.ok.Add(1)
		}
		s.mergeMu.Unlock()
		if err != nil {
			args := []any{"err", err}
			if de := (*DamageError)(nil); errors.As(err, &de) && de.Stack != "" {
				args = append(args, "stack", de.Stack)
			}
			s.log.Error("signature index merge failed; the entries stay in memory and the next merge retries", args...)
		}
	}()
	return done
}

// pendingEntries is how many signature records are not in the persisted
// index: those pending in memory and those the journal has not applied
// yet (each becomes a pending entry when it is).
func (s *Store) pendingEntries() int {
	// The journal's count first: an apply indexes its frames before it
	// takes them off that count, so in this order a concurrent apply
	// makes the sum too high (the callers count again), never too low.
	n := 0
	if s.j != nil {
		n = s.j.unappliedSigs()
	}
	return n + s.idx.len()
}

// throttle makes a signer wait for a merge when pending has reached
// throttleFactor times the merge threshold. Each waiting signer has added
// its one entry, so while merges succeed pending stays below that bound
// plus the signers in flight. A merge must be running for that: entries
// reach the index when the journal applies them (which is what starts
// merges), after the signer's own check, so at the bound throttle
// applies the journal itself and starts the merge if none runs.
func (s *Store) throttle(pending int) {
	if pending < throttleFactor*s.mergeAtBase {
		return
	}
	// After a failed merge neither an apply nor a merge is started
	// here (maybeMerge waits for more entries, admit refuses at twice
	// the bound), so a failing disk does not turn every signature into
	// a transaction of its own.
	s.mergeMu.Lock()
	failing := !s.merging && s.mergeErr != nil
	s.mergeMu.Unlock()
	if failing {
		return
	}
	if err := s.Sync(context.Background()); err != nil {
		// An apply failed; the applier retries after its back-off,
		// and admit refuses once twice the bound is pending.
		return
	}
	s.mergeMu.Lock()
	var done chan struct{}
	if s.idx.len() >= throttleFactor*s.mergeAtBase && (s.merging || s.mergeErr == nil) {
		// Counted again, everything now in the index: a merge may
		// have ended since and taken it below the bound.
		done = s.startMergeLocked()
	}
	s.mergeMu.Unlock()
	if done != nil {
		<-done
	}
}

// admit refuses a new signature record while twice the throttle's bound
// is pending and the merge it waits for (tried again now) fails: the pending index
// would otherwise grow without bound (and be read back by every start)
// while, say, a damaged record makes every merge fail. Nothing is signed
// into a record that could not be found; the log says why.
func (s *Store) admit() error {
	hard := 2 * throttleFactor * s.mergeAtBase
	if s.readOnly || s.pendingEntries() < hard {
		return nil // read-only: the commit refuses (FailedPrecondition)
	}
	// The journal's records first, into the pending index: the merge
	// below then covers them, and the count below is the index's.
	if err := s.Sync(context.Background()); err != nil {
		return err
	}
	s.mergeMu.Lock()
	done := s.startMergeLocked()
	s.mergeMu.Unlock()
	if done == nil {
		return nil // closing: the commit fails on its own
	}
	<-done
	s.mergeMu.Lock()
	err := s.mergeErr
	s.mergeMu.Unlock()
	// A merge that succeeded admits: signers only outran it.
	if n := s.idx.len(); n >= hard && err != nil {
		return fmt.Errorf("%d signature records wait for the digest index, whose merges fail (the log says why; check the disk, or run audit verify): %w", n, errdefs.ErrUnavailable)
	}
	return nil
}

// mergeIndex writes the entries of the records after the watermark into
// sigindex/, sorted, s.mergeChunk to a transaction, and moves the watermark
// in the last one. A crash between chunks leaves the watermark where it
// was: the next merge writes those entries again, unchanged.
func (s *Store) mergeIndex() error {
	start := time.Now()
	var keys [][]byte
	var mark, hi uint64
	if err := s.w.view(s.db, func(tx *bolt.Tx) (err error) {
		keys, mark, hi, err = unindexed(tx, maxMergeScan, nil)
		return err
	}); err != nil {
		return mapBoltErr(err)
	}
	if len(keys) == 0 {
		// Nothing new; entries a signer added after the last merge had
		// already read its record are at or below the watermark.
		s.idx.prune(mark)
		return nil
	}
	slices.SortFunc(keys, bytes.Compare)
	for i := 0; i < len(keys); i += s.mergeChunk {
		chunk := keys[i:min(i+s.mergeChunk, len(keys))]
		last := i+s.mergeChunk >= len(keys)
		if s.mergeHook != nil {
			if err := s.mergeHook(i / s.mergeChunk); err != nil {
				return err
			}
		}
		err := s.w.update(s.db, func(tx *bolt.Tx) error {
			idx, err := bucket(tx, bucketKeySigIndex)
			if err != nil {
				return err
			}
			for _, k := range chunk {
				if err := idx.Put(k, []byte{}); err != nil {
					return err
				}
			}
			if !last {
				return nil
			}
			meta, err := bucket(tx, bucketKeyMeta)
			if err != nil {
				return err
			}
			// One merge at a time, so the watermark cannot have moved
			// since the scan; if it has, something else wrote it.
			if now, err := readMark(meta); err != nil || now != mark {
				return errors.Join(err, fmt.Errorf("signature index watermark moved from %d to %d during a merge: %w", mark, now, errdefs.ErrInternal))
			}
			return meta.Put(keySigIndexMark, seqKey(hi))
		})
		if err != nil {
			return mapBoltErr(err)
		}
	}
	s.idx.prune(hi)
	s.log.Debug("merged the signature index", "entries", len(keys), "watermark", hi, "duration", time.Since(start))
	return nil
}

// signatureRecords calls fn with the key (signatureKey) and encoded record
// of each signature record whose key starts with prefix and sorts after
// after (from the first, if after is nil), in ascending key order, until fn
// returns false. It reads the three places records are found: signatures/
// (schemas 1 to 4), and sigrecords/ through sigindex/ or pending, the
// keys indexed only in memory, sorted and taken before tx began (so each
// names a committed record; one merged since is in sigindex/ too and is
// read once).
func signatureRecords(tx *bolt.Tx, prefix, after []byte, pending [][]byte, fn func(k, v []byte) (bool, error)) error {
	records := recordsBucket(tx)
	return signatureKeys(tx, prefix, after, pending, func(k, legacy []byte) (bool, error) {
		v, err := signatureRecord(records, k, legacy)
		if err != nil {
			return false, err
		}
		return fn(k, v)
	})
}

// recordsBucket returns sigrecords/, or nil in a file from before schema
// 5 (opened read-only, not migrated).
func recordsBucket(tx *bolt.Tx) *bolt.Bucket {
	if root := tx.Bucket(bucketKeyRoot); root != nil {
		return root.Bucket(bucketKeySigRecords)
	}
	return nil
}

// signatureRecord returns the encoded record of a key signatureKeys
// yielded: legacy, its value in signatures/, or else the record the key
// names in records (recordsBucket).
func signatureRecord(records *bolt.Bucket, k, legacy []byte) ([]byte, error) {
	if legacy != nil {
		return legacy, nil
	}
	seq, _ := loggedSeq(k)
	var v []byte
	if records != nil {
		v = records.Get(seqKey(seq))
	}
	if v == nil {
		return nil, fmt.Errorf("the signature index names record %d, which is missing (run audit verify): %w", seq, errdefs.ErrInternal)
	}
	return v, nil
}

// signatureKeys is signatureRecords without reading sigrecords/: fn gets
// each key and, for a record of signatures/, its value (nil for the
// others; signatureRecord reads them).
func signatureKeys(tx *bolt.Tx, prefix, after []byte, pending [][]byte, fn func(k, legacy []byte) (bool, error)) error {
	legacy, err := bucket(tx, bucketKeySignatures)
	if err != nil {
		return err
	}
	index := tx.Bucket(bucketKeyRoot).Bucket(bucketKeySigIndex)
	start := prefix
	if bytes.Compare(after, start) > 0 {
		start = after
	}
	// seek positions c at the first key >= start, past after, within
	// prefix; a nil key is the end.
	within := func(k []byte) []byte {
		if k == nil || !bytes.HasPrefix(k, prefix) {
			return nil
		}
		return k
	}
	seek := func(c *bolt.Cursor) ([]byte, []byte) {
		k, v := c.First()
		if len(start) > 0 {
			k, v = c.Seek(start)
		}
		if after != nil && bytes.Equal(k, after) {
			k, v = c.Next()
		}
		return within(k), v
	}
	lc := legacy.Cursor()
	lk, lv := seek(lc)
	var ic *bolt.Cursor
	var ik []byte
	if index != nil {
		ic = index.Cursor()
		ik, _ = seek(ic)
	}
	pi, _ := slices.BinarySearchFunc(pending, start, bytes.Compare)
	if pi < len(pending) && after != nil && bytes.Equal(pending[pi], after) {
		pi++
	}
	pk := func() []byte {
		if pi < len(pending) {
			return within(pending[pi])
		}
		return nil
	}
	for {
		k, v := lk, lv
		fromLegacy := k != nil
		for _, c := range [][]byte{ik, pk()} {
			if c != nil && (k == nil || bytes.Compare(c, k) < 0) {
				k, fromLegacy = c, false
			}
		}
		if k == nil {
			return nil
		}
		if fromLegacy {
			lk, lv = lc.Next()
			lk = within(lk)
		} else {
			k = bytes.Clone(k)
			if ik != nil && bytes.Equal(ik, k) {
				ik, _ = ic.Next()
				ik = within(ik)
			}
			if p := pk(); p != nil && bytes.Equal(p, k) {
				pi++
			}
			v = nil // not the legacy cursor's value: that is another key's
		}
		more, err := fn(k, v)
		if err != nil || !more {
			return err
		}
	}
}
