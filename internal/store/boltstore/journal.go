package boltstore

// The journal: the durable record of the signing path (schema 7).
//
// A signature is released only once its record and audit record are on
// disk. Committing them to bbolt in the signing path cost each group of
// signatures a B+tree transaction (the rightmost pages of four buckets
// rewritten, two fdatasyncs) on the critical path: measured against the
// same daemon with the record skipped, that was a third of the throughput
// at 32 Sign clients. So the signing path appends its records to a journal
// beside the database (path + ".journal") and fdatasyncs it, one write and
// one fdatasync per group of callers, and a background applier writes them
// into bbolt later, many groups to a transaction.
//
// What is acknowledged is on disk: in the journal until applied, in bbolt
// after. The journal is a fixed-size file, zero-filled when created (so an
// fdatasync has only data to flush, not block allocations), written as a
// ring: each group goes where the previous ended, or at the start when it
// does not fit before the end, never over a frame not yet applied. Each
// apply transaction also records (meta/journal_pos) where the frame after
// its last one starts. Open reads the frames from there, and from the
// start of the file when the frame there is not the next one, for as long
// as each frame is intact (CRC-32C) and continues the audit chain (its seq
// is the head's plus one and its record names the head's hash), applies
// them, and only then serves. A frame that breaks the chain ends the scan:
// it was either never acknowledged (its group's fdatasync had not
// returned) or a frame of an earlier lap, already applied. A frame whose
// group was not acknowledged but reached the disk whole is applied: the
// record of a signature never released, as when signerd dies between a
// commit and its reply.
//
// Everything else that writes the log (key, trust and checkpoint changes)
// goes through Store.update, which first stops the journal's writer and
// applies every frame, so the audit chain has one order. Readers of the
// log (ListAudit, proofs, signature lookups, audit verification) first
// apply what is acknowledged, so they see every record returned so far.

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	bolt "go.etcd.io/bbolt"
	"golang.org/x/sys/unix"

	"github.com/signerd/signerd/internal/errdefs"
	"github.com/signerd/signerd/internal/store"
)

const (
	// journalSuffix names the journal beside the database file.
	journalSuffix = ".journal"
	// defaultJournalSize is the journal's size: many seconds of signing at
	// full speed (a record and its audit record are about 1.5 KiB), and
	// room for the largest SignSkill record with its manifest.
	defaultJournalSize = 64 << 20
	// minJournalSize is the smallest journal Open accepts (tests use
	// small ones to make it wrap): half of it must hold a group of
	// ordinary records, and a record larger than half is refused.
	minJournalSize = 4 << 10
	// journalHeader is a frame's header: magic, payload length, seq, CRC.
	journalHeader = 4 + 4 + 8 + 4
	// defaultApplyAt is how many frames start an apply before the delay.
	defaultApplyAt = 1024
	// defaultApplyDelay is the longest a frame waits to be applied while
	// the daemon is busy with less than defaultApplyAt.
	defaultApplyDelay = 50 * time.Millisecond
	// maxApply bounds the frames of one apply transaction, which holds
	// bbolt's writer lock.
	maxApply = 4096
)

// journalMagic starts every frame.
var journalMagic = [4]byte{'S', 'J', 'F', '1'}

var crcTable = crc32.MakeTable(crc32.Castagnoli)

// frame is one audit record, with the signature record it logs (if any),
// acknowledged and not yet applied to bbolt.
type frame struct {
	seq      uint64
	hash     []byte // the audit record's hash
	prev     []byte // the hash it chains to
	leaf     []byte // its tree leaf hash
	audit    []byte // the audit record as stored in audit/
	sig      []byte // the signature record as stored in sigrecords/, or nil
	digest   []byte // the signature record's digest, or nil
	off, end int64  // where it is in the journal
}

// journalReq is one caller's record waiting for a group commit.
type journalReq struct {
	ev     store.AuditEvent
	sig    []byte // signature record JSON, or nil
	digest []byte
	// signer is the key version that made sig: the writer refuses the
	// record if that version is revoked (revoked.go).
	signer versionRef
	// size is about what its frame takes in the journal, reckoned by
	// the caller so that the writer, which everyone waits for, only adds.
	size int64
	rec  store.AuditRecord // set when done
	err  error
	done chan struct{}
}

type journal struct {
	s    *Store
	f    *os.File
	path string
	size int64
	max  int // requests in one group

	// wmu is held by the writer for a group and by Store.update for a
	// whole direct transaction: it orders the audit chain.
	wmu sync.Mutex
	// applyMu serialises applies (the applier, readers' syncs, drains).
	applyMu sync.Mutex

	mu        sync.Mutex
	pending   []*journalReq
	running   bool
	closed    bool
	failed    error    // a write or fdatasync failed: no more writes
	applyErr  error    // the last apply's failure, nil once one succeeds
	damaged   error    // an apply met damage in the file: no more applies
	headSeq   uint64   // the newest acknowledged audit record
	headHash  []byte   //
	woff      int64    // where the next group goes, if it fits
	unapplied []*frame // acknowledged, oldest first
	sigs      int      // how many of them carry a signature record
	applied   uint64   // the newest seq in bbolt

	kick    chan struct{}
	stop    chan struct{}
	stopped chan struct{}
	applyAt int
	delay   time.Duration

	groups, applies atomic.Uint64
	buf             []byte
}

// journalPath is the journal's file for the database at path.
func journalPath(db string) string { return db + journalSuffix }

// JournalPath is the journal's file for the database at path, for the
// daemon to remove with a database its failed start created.
func JournalPath(db string) string { return journalPath(db) }

// openJournal opens (creating it zero-filled) the journal of s, applies
// the frames acknowledged before the last stop and not yet in bbolt, and
// starts the applier.
//
// The journal must belong to the file (a journal without its database is
// refused by Open before the file is made): a file that was not closed
// cleanly (keyJournalOpen) refuses a journal that is missing or shorter
// than it was, unless acceptLoss: records acknowledged before the stop
// may have been only there, and serving on would fork the log from what
// was released.
func openJournal(s *Store, size int64, acceptLoss bool) (*journal, error) {
	j := &journal{s: s, path: journalPath(s.path), size: size, max: s.maxBatch,
		kick: make(chan struct{}, 1), stop: make(chan struct{}), stopped: make(chan struct{}),
		applyAt: defaultApplyAt, delay: defaultApplyDelay}
	if err := checkJournalBelongs(s, j.path, acceptLoss); err != nil {
		return nil, err
	}
	// An accepted loss is pending in the file before the journal is made
	// whole again: a start that dies after recreating it would otherwise
	// find nothing missing, and the loss would never be recorded. A loss
	// accepted by a start that stopped before recording it stays pending,
	// and a second loss accepted meanwhile is kept beside it, not in its
	// place.
	// (A read first: most starts have nothing to write.)
	var pending string
	if err := s.w.view(s.db, func(tx *bolt.Tx) error {
		meta, err := bucket(tx, bucketKeyMeta)
		if err != nil {
			return err
		}
		pending = string(meta.Get(keyJournalLoss))
		return nil
	}); err != nil {
		return nil, mapBoltErr(err)
	}
	switch {
	case s.journalLoss == "":
		s.journalLoss = pending
	default:
		if pending != "" {
			s.journalLoss = pending + "; then, at a later start, " + s.journalLoss
		}
		if err := s.w.update(s.db, func(tx *bolt.Tx) error {
			meta, err := bucket(tx, bucketKeyMeta)
			if err != nil {
				return err
			}
			return meta.Put(keyJournalLoss, []byte(s.journalLoss))
		}); err != nil {
			return nil, mapBoltErr(err)
		}
	}
	f, err := openJournalFile(j.path, size)
	if err != nil {
		return nil, err
	}
	if journalMadeHook != nil {
		if err := journalMadeHook(); err != nil { // a start that dies here (tests)
			_ = f.Close()
			return nil, err
		}
	}
	j.f = f
	if fi, err := f.Stat(); err == nil && fi.Size() > j.size {
		j.size = fi.Size() // a journal made larger than today's default
	}
	defer func() {
		if r := recover(); r != nil { // damage in the file (Open's Guard)
			_ = f.Close()
			panic(r)
		}
	}()
	if err := j.recover(); err != nil {
		_ = f.Close()
		return nil, err
	}
	// From here until a clean close, the journal may hold records that
	// are nowhere else.
	if err := s.w.update(s.db, func(tx *bolt.Tx) error {
		meta, err := bucket(tx, bucketKeyMeta)
		if err != nil {
			return err
		}
		return meta.Put(keyJournalOpen, binary.BigEndian.AppendUint64(nil, uint64(j.size)))
	}); err != nil {
		_ = f.Close()
		return nil, mapBoltErr(err)
	}
	go j.applier()
	return j, nil
}

// journalMadeHook, when set by tests, runs once the journal file is whole
// again; an error stops the open there, as a crash would.
var journalMadeHook func() error

// checkJournalBelongs refuses a journal that cannot be this file's whole
// journal (see openJournal), or, with acceptLoss, records what is
// accepted in s.journalLoss.
func checkJournalBelongs(s *Store, path string, acceptLoss bool) error {
	fi, err := os.Stat(path)
	missing := errors.Is(err, fs.ErrNotExist)
	if err != nil && !missing {
		return fmt.Errorf("stat journal %s: %w", path, errors.Join(errdefs.ErrUnavailable, err))
	}
	var openSize int64
	if err := s.w.view(s.db, func(tx *bolt.Tx) error {
		meta, err := bucket(tx, bucketKeyMeta)
		if err != nil {
			return err
		}
		if raw := meta.Get(keyJournalOpen); len(raw) == 8 {
			openSize = int64(binary.BigEndian.Uint64(raw))
		}
		return nil
	}); err != nil {
		return mapBoltErr(err)
	}
	if openSize == 0 {
		return nil // closed cleanly: everything is in the file
	}
	var damage string
	switch {
	case missing:
		damage = "is missing"
	case fi.Size() < openSize:
		damage = fmt.Sprintf("is %d bytes, shorter than the %d it had", fi.Size(), openSize)
	default:
		return nil
	}
	msg := fmt.Sprintf("%s was not closed cleanly (signerd was killed, or this is a copy of a running database) and its journal %s %s: signatures acknowledged before the stop may be recorded only there",
		s.path, path, damage)
	switch {
	case s.readOnly:
		return fmt.Errorf("%s; to read a copy, stop signerd (after a crash, start and stop it once) and copy the database then: %w",
			msg, errdefs.ErrFailedPrecondition)
	case !acceptLoss:
		return fmt.Errorf("%s; put the journal back beside the database and start again (if it is lost for good, --accept-journal-loss starts anyway and records the loss in the audit log): %w",
			msg, errdefs.ErrFailedPrecondition)
	}
	s.journalLoss = msg
	s.log.Error("starting although records may be lost (--accept-journal-loss)", "detail", msg)
	return nil
}

// openJournalFile opens the journal, creating it full of zeros (and its
// directory entry durable) if it does not exist or is shorter than size.
func openJournalFile(path string, size int64) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open journal %s: %w", path, errors.Join(errdefs.ErrUnavailable, err))
	}
	fi, err := f.Stat()
	if err != nil {
		_ = f.Close()
		return nil, fmt.Errorf("stat journal %s: %w", path, errors.Join(errdefs.ErrUnavailable, err))
	}
	if fi.Size() >= size {
		return f, nil
	}
	// Zeros, written: fallocate would leave unwritten extents, and the
	// first write to each would make its fdatasync a metadata commit.
	zero := make([]byte, 1<<20)
	for off := fi.Size(); off < size; off += int64(len(zero)) {
		n := min(int64(len(zero)), size-off)
		if _, err := f.WriteAt(zero[:n], off); err != nil {
			_ = f.Close()
			return nil, fmt.Errorf("create journal %s: %w", path, errors.Join(errdefs.ErrUnavailable, err))
		}
	}
	if err := f.Sync(); err != nil {
		_ = f.Close()
		return nil, fmt.Errorf("create journal %s: %w", path, errors.Join(errdefs.ErrUnavailable, err))
	}
	if d, err := os.Open(filepath.Dir(path)); err == nil {
		_ = d.Sync()
		_ = d.Close()
	}
	return f, nil
}

// do appends one audit record (and the signature record it logs) through
// a group commit and returns the record once it is on disk. ctx is
// consulted only before the request is queued: once queued it is
// committed (a group is one write), and do waits for that, behind the
// groups queued before it (and, when the journal is full, the applies
// that make room).
func (j *journal) do(ctx context.Context, ev store.AuditEvent, sig, digest []byte, signer versionRef) (store.AuditRecord, error) {
	if err := ctx.Err(); err != nil {
		return store.AuditRecord{}, err
	}
	if err := j.s.w.get(); err != nil {
		// Its records could never be applied (wedge.go).
		return store.AuditRecord{}, err
	}
	r := &journalReq{ev: ev, sig: sig, digest: digest, signer: signer, done: make(chan struct{}),
		// The record's seq and hashes are not known yet: 256 bytes
		// covers them.
		size: int64(journalHeader + 8 + len(sig) + store.AuditRecordJSONSize(store.AuditRecord{AuditEvent: ev}) + 256)}
	j.mu.Lock()
	switch {
	case j.closed:
		j.mu.Unlock()
		return store.AuditRecord{}, fmt.Errorf("database closed: %w", errdefs.ErrUnavailable)
	case j.failed != nil:
		err := j.failed
		j.mu.Unlock()
		return store.AuditRecord{}, err
	}
	j.pending = append(j.pending, r)
	if !j.running {
		j.running = true
		go j.writer()
	}
	j.mu.Unlock()
	<-r.done
	return r.rec, r.err
}

// writer commits queued requests, a group at a time, until none is left.
func (j *journal) writer() {
	for {
		j.wmu.Lock()
		j.mu.Lock()
		n := groupSize(j.pending, j.max, j.size/2)
		if n == 0 {
			j.running = false
			j.mu.Unlock()
			j.wmu.Unlock()
			return
		}
		batch := j.pending[:n:n]
		j.pending = append([]*journalReq(nil), j.pending[n:]...)
		failed := j.failed
		if failed == nil {
			// Requests queued before a wedge: their records could not
			// be applied (wedge.go).
			failed = j.s.w.get()
		}
		if j.closed && failed == nil {
			// close has applied everything before it: nothing may
			// follow.
			failed = fmt.Errorf("database closed: %w", errdefs.ErrUnavailable)
		}
		j.mu.Unlock()
		if failed != nil {
			for _, r := range batch {
				r.err = failed
				close(r.done)
			}
		} else {
			j.commit(batch)
		}
		j.wmu.Unlock()
	}
}

// groupSize is how many of the first requests of pending go in one group:
// at most max, and no more bytes than limit (a record larger than that
// alone goes alone, and commit refuses it).
func groupSize(pending []*journalReq, max int, limit int64) int {
	var bytes int64
	for i, r := range pending {
		if i == max {
			return i
		}
		bytes += r.size
		if bytes > limit && i > 0 {
			return i
		}
	}
	return len(pending)
}

// commit chains batch after the head, writes it as one group and
// fdatasyncs it. j.wmu is held.
func (j *journal) commit(batch []*journalReq) {
	seq, prev := j.headSeq, j.headHash
	buf := j.buf[:0]
	frames := make([]*frame, 0, len(batch))
	ok := make([]*journalReq, 0, len(batch))
	for _, r := range batch {
		if r.sig != nil && j.s.revoked.has(r.signer.name, r.signer.version) {
			r.err = store.RevokedBeforeRecorded(r.signer.name, r.signer.version)
			close(r.done)
			continue
		}
		rec := store.AuditRecord{Seq: seq + 1, PrevHash: prev, AuditEvent: r.ev}
		rec.Hash = store.HashAuditRecord(rec)
		raw, err := store.AppendAuditRecordJSON(make([]byte, 0, store.AuditRecordJSONSize(rec)), rec)
		if err != nil {
			r.err = fmt.Errorf("encode audit record: %w", errors.Join(errdefs.ErrInternal, err))
			close(r.done)
			continue
		}
		start := len(buf)
		buf = appendFrame(buf, rec.Seq, raw, r.sig)
		if int64(len(buf)-start) > j.size/2 {
			// Not with the default size and the request limits (a
			// frame is at most a few MiB), but possible in a small
			// journal: refuse rather than wrap over itself.
			buf = buf[:start]
			r.err = fmt.Errorf("record of %d bytes is too large for the journal: %w", len(raw)+len(r.sig), errdefs.ErrResourceExhausted)
			close(r.done)
			continue
		}
		r.rec = rec
		frames = append(frames, &frame{seq: rec.Seq, hash: rec.Hash, prev: prev, leaf: store.LeafHash(rec),
			audit: raw, sig: r.sig, digest: r.digest, off: int64(start), end: int64(len(buf))})
		ok = append(ok, r)
		seq, prev = rec.Seq, rec.Hash
	}
	if cap(buf) <= 1<<20 {
		j.buf = buf // kept for the next group, unless a large skill grew it
	}
	if len(ok) == 0 {
		return
	}
	off, err := j.reserve(int64(len(buf)))
	if err != nil {
		// Nothing was written: these callers fail, the journal goes on.
		err = fmt.Errorf("journal full and its records cannot be applied: %w", err)
		for _, r := range ok {
			r.rec, r.err = store.AuditRecord{}, err
			close(r.done)
		}
		return
	}
	if _, err = j.f.WriteAt(buf, off); err == nil {
		err = fdatasync(j.f)
	}
	if err != nil {
		err = fmt.Errorf("write journal %s: %w", j.path, errors.Join(errdefs.ErrUnavailable, err))
		// What reached the disk is unknown, so nothing more is written:
		// the next start applies what is intact and chains.
		j.s.log.Error("journal write failed; signing stops until signerd restarts", "err", err)
		j.mu.Lock()
		if j.failed == nil {
			j.failed = err
		}
		j.mu.Unlock()
		for _, r := range ok {
			r.rec, r.err = store.AuditRecord{}, err
			close(r.done)
		}
		return
	}
	for _, f := range frames {
		f.off += off
		f.end += off
	}
	j.groups.Add(1)
	j.mu.Lock()
	j.headSeq, j.headHash = seq, prev
	j.woff = off + int64(len(buf))
	j.unapplied = append(j.unapplied, frames...)
	j.sigs += countSigs(frames)
	n, applyAt := len(j.unapplied), j.applyAt
	j.mu.Unlock()
	if n >= applyAt || n == len(frames) {
		// A full batch, or the first frame since the last apply (which
		// starts the delay): wake the applier.
		j.wake()
	}
	for _, r := range ok {
		close(r.done)
	}
}

// reserve returns where a group of n bytes goes: at j.woff if it fits
// before the end, else at the start, never over an unapplied frame. It
// applies frames to make room when the journal is full. j.wmu is held.
func (j *journal) reserve(n int64) (int64, error) {
	for {
		j.mu.Lock()
		woff := j.woff
		var tail int64 = -1
		if len(j.unapplied) > 0 {
			tail = j.unapplied[0].off
		}
		j.mu.Unlock()
		switch {
		case tail < 0:
			if woff+n <= j.size {
				return woff, nil
			}
			return 0, nil
		case tail < woff: // the unapplied frames are [tail, woff)
			if woff+n <= j.size {
				return woff, nil
			}
			if n <= tail {
				return 0, nil
			}
		default: // wrapped: they are [tail, end) and [0, woff)
			if woff+n <= tail {
				return woff, nil
			}
		}
		if err := j.applyOnce(); err != nil {
			return 0, err
		}
	}
}

// appendFrame appends a frame: magic, payload length, seq, CRC-32C of
// (length, seq, payload), then the payload: the audit record's length and
// bytes, the signature record's length and bytes (0 and none if absent).
func appendFrame(buf []byte, seq uint64, audit, sig []byte) []byte {
	start := len(buf)
	plen := 4 + len(audit) + 4 + len(sig)
	buf = append(buf, journalMagic[:]...)
	buf = binary.BigEndian.AppendUint32(buf, uint32(plen))
	buf = binary.BigEndian.AppendUint64(buf, seq)
	buf = append(buf, 0, 0, 0, 0) // CRC
	buf = binary.BigEndian.AppendUint32(buf, uint32(len(audit)))
	buf = append(buf, audit...)
	buf = binary.BigEndian.AppendUint32(buf, uint32(len(sig)))
	buf = append(buf, sig...)
	crc := crc32.Update(0, crcTable, buf[start+4:start+16])
	crc = crc32.Update(crc, crcTable, buf[start+journalHeader:])
	binary.BigEndian.PutUint32(buf[start+16:], crc)
	return buf
}

// readFrame reads the frame at off; ok is false if there is none intact.
func (j *journal) readFrame(off int64) (seq uint64, audit, sig []byte, end int64, ok bool) {
	if off < 0 || off+journalHeader > j.size {
		return 0, nil, nil, 0, false
	}
	var h [journalHeader]byte
	if _, err := j.f.ReadAt(h[:], off); err != nil {
		return 0, nil, nil, 0, false
	}
	if !bytes.Equal(h[:4], journalMagic[:]) {
		return 0, nil, nil, 0, false
	}
	plen := int64(binary.BigEndian.Uint32(h[4:]))
	seq = binary.BigEndian.Uint64(h[8:])
	end = off + journalHeader + plen
	if plen < 8 || plen > j.size/2 || end > j.size {
		return 0, nil, nil, 0, false
	}
	p := make([]byte, plen)
	if _, err := j.f.ReadAt(p, off+journalHeader); err != nil && !errors.Is(err, io.EOF) {
		return 0, nil, nil, 0, false
	}
	crc := crc32.Update(0, crcTable, h[4:16])
	if crc32.Update(crc, crcTable, p) != binary.BigEndian.Uint32(h[16:]) {
		return 0, nil, nil, 0, false
	}
	alen := int64(binary.BigEndian.Uint32(p))
	if 4+alen+4 > plen {
		return 0, nil, nil, 0, false
	}
	audit = p[4 : 4+alen]
	slen := int64(binary.BigEndian.Uint32(p[4+alen:]))
	if 4+alen+4+slen != plen {
		return 0, nil, nil, 0, false
	}
	if slen > 0 {
		sig = p[4+alen+4:]
	}
	return seq, audit, sig, end, true
}

// scan reads the frames that continue the chain after (seq, hash), the
// first at off or, failing that, at the start of the file.
func (j *journal) scan(off int64, seq uint64, hash []byte) []*frame {
	var out []*frame
	for {
		f, ok := j.frameAt(off, seq, hash)
		if !ok && off != 0 {
			f, ok = j.frameAt(0, seq, hash)
		}
		if !ok {
			return out
		}
		out = append(out, f)
		off, seq, hash = f.end, f.seq, f.hash
	}
}

// frameAt returns the frame at off if it is intact and chains after
// (seq, hash): the next seq, naming hash, with a record that hashes to
// what it says.
func (j *journal) frameAt(off int64, seq uint64, hash []byte) (*frame, bool) {
	fseq, audit, sig, end, ok := j.readFrame(off)
	if !ok || fseq != seq+1 {
		return nil, false
	}
	rec, err := store.DecodeAuditRecordJSON(audit)
	if err != nil || rec.Seq != fseq || !bytes.Equal(rec.PrevHash, hash) || !bytes.Equal(store.HashAuditRecord(rec), rec.Hash) {
		return nil, false
	}
	f := &frame{seq: fseq, hash: rec.Hash, prev: rec.PrevHash, leaf: store.LeafHash(rec), audit: audit, off: off, end: end}
	if sig != nil {
		d, err := recordDigest(sig)
		if err != nil {
			return nil, false
		}
		f.sig, f.digest = sig, d
	}
	return f, true
}

// recover applies the frames after the database's audit head and sets
// the writer's position and head.
func (j *journal) recover() error {
	var seq uint64
	var hash []byte
	var pos int64
	err := j.s.w.view(j.s.db, func(tx *bolt.Tx) error {
		var err error
		if seq, hash, pos, err = journalState(tx); err != nil {
			return err
		}
		return nil
	})
	if err != nil {
		return mapBoltErr(err)
	}
	frames := j.scan(pos, seq, hash)
	j.headSeq, j.headHash, j.applied, j.woff = seq, hash, seq, pos
	if err := j.s.w.view(j.s.db, func(tx *bolt.Tx) error { return pastHead(tx, seq) }); err != nil {
		// Records past the head are damage or tampering: appending would
		// hide them (appendAudit refuses the same way). Reads go on, so
		// that audit verify can say what happened; writes are refused.
		j.failed = mapBoltErr(err)
		j.s.log.Error("audit log damaged; signing is refused", "err", err)
		return nil
	}
	if len(frames) > 0 {
		last := frames[len(frames)-1]
		j.headSeq, j.headHash, j.woff = last.seq, last.hash, last.end
		j.unapplied = frames
		j.sigs = countSigs(frames)
		j.s.log.Info("applying journal records acknowledged before the last stop", "records", len(frames), "first_seq", frames[0].seq, "last_seq", last.seq)
		for len(j.unapplied) > 0 {
			if err := j.applyOnce(); err != nil {
				return err
			}
		}
	}
	return nil
}

// pastHead fails if audit/ or sigrecords/ hold a record past seq, the
// audit head.
func pastHead(tx *bolt.Tx, seq uint64) error {
	for _, name := range [][]byte{bucketKeyAudit, bucketKeySigRecords} {
		b, err := bucket(tx, name)
		if err != nil {
			return err
		}
		if k, _ := b.Cursor().Last(); k != nil && len(k) == 8 && binary.BigEndian.Uint64(k) > seq {
			return fmt.Errorf("audit log damaged: %s holds a record at seq %d, past the head %d (run audit verify): %w", name, binary.BigEndian.Uint64(k), seq, errdefs.ErrInternal)
		}
	}
	return nil
}

// journalState reads the audit head and the journal position from tx.
func journalState(tx *bolt.Tx) (seq uint64, hash []byte, pos int64, err error) {
	meta, err := bucket(tx, bucketKeyMeta)
	if err != nil {
		return 0, nil, 0, err
	}
	if seq, hash, err = readHead(meta); err != nil {
		return 0, nil, 0, err
	}
	if raw := meta.Get(keyJournalPos); raw != nil {
		if len(raw) != 8 {
			return 0, nil, 0, fmt.Errorf("journal position is %d bytes, want 8: %w", len(raw), errdefs.ErrInternal)
		}
		pos = int64(binary.BigEndian.Uint64(raw))
	}
	return seq, hash, pos, nil
}

// wake asks the applier to apply now.
func (j *journal) wake() {
	select {
	case j.kick <- struct{}{}:
	default:
	}
}

// applier applies frames when defaultApplyAt have gathered, or j.delay
// after it finds the first of them, until the journal closes.
func (j *journal) applier() {
	defer close(j.stopped)
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	for {
		j.mu.Lock()
		n, applyAt, delay := len(j.unapplied), j.applyAt, j.delay
		j.mu.Unlock()
		if n == 0 {
			select {
			case <-j.stop:
				return
			case <-j.kick:
			}
			continue
		}
		if n < applyAt {
			// Wait out the delay (more frames make a cheaper apply),
			// unless a full batch gathers first.
			timer.Reset(delay)
			select {
			case <-j.stop:
				timer.Stop()
				return
			case <-j.kick:
				timer.Stop()
				continue // counted again: a kick may be a full batch or the first frame
			case <-timer.C:
			}
		}
		if err := j.applyOnce(); err != nil {
			if de := (*DamageError)(nil); errors.As(err, &de) {
				<-j.stop // said once (applyOnce); nothing to retry
				return
			}
			j.s.log.Error("applying the journal to the database failed; retrying", "err", err)
			timer.Reset(time.Second)
			select {
			case <-j.stop:
				timer.Stop()
				return
			case <-timer.C:
			}
		}
	}
}

// applyOnce applies up to maxApply of the oldest unapplied frames in one
// bbolt transaction. Damage in the file that makes bbolt panic or fault
// (the applier runs where no handler recovers) fails it and every apply
// after it, and stops signing (health NOT_SERVING), rather than ending the
// process: a restart would serve until the next apply met it again.
func (j *journal) applyOnce() error {
	j.mu.Lock()
	damaged := j.damaged
	j.mu.Unlock()
	if damaged != nil {
		return damaged
	}
	err := Guard(j.s.path, j.applyOnceUnguarded)
	if de := (*DamageError)(nil); errors.As(err, &de) {
		j.mu.Lock()
		if j.damaged == nil {
			j.damaged = err
			j.s.log.Error("the database is damaged: applying the journal to it failed; signing stops (the journal keeps what was acknowledged), audit verify --db on a stopped copy says where", "err", err)
		}
		if j.failed == nil {
			j.failed = err
		}
		j.mu.Unlock()
	}
	return err
}

func (j *journal) applyOnceUnguarded() error {
	j.applyMu.Lock()
	defer j.applyMu.Unlock()
	j.mu.Lock()
	frames := j.unapplied[:min(len(j.unapplied), maxApply)]
	j.mu.Unlock()
	if len(frames) == 0 {
		return nil
	}
	err := mapBoltErr(j.s.w.update(j.s.db, func(tx *bolt.Tx) error { return applyFrames(tx, frames) }))
	pending := 0
	if err == nil {
		// Indexed before they count as applied: a reader that finds them
		// applied (sync) then finds them in the index too.
		for _, f := range frames {
			if f.digest != nil {
				pending = j.s.idx.add(f.digest, f.seq)
			}
		}
	}
	j.mu.Lock()
	j.applyErr = err
	if err == nil {
		j.unapplied = j.unapplied[len(frames):]
		j.sigs -= countSigs(frames)
		j.applied = frames[len(frames)-1].seq
	}
	j.mu.Unlock()
	if err != nil {
		return err
	}
	j.applies.Add(1)
	if pending > 0 {
		j.s.maybeMerge(pending)
	}
	return nil
}

// applyFrames writes frames, which continue the audit chain at tx's head,
// and the journal position after the last of them.
func applyFrames(tx *bolt.Tx, frames []*frame) error {
	audit, err := bucket(tx, bucketKeyAudit)
	if err != nil {
		return err
	}
	recs, err := bucket(tx, bucketKeySigRecords)
	if err != nil {
		return err
	}
	meta, err := bucket(tx, bucketKeyMeta)
	if err != nil {
		return err
	}
	audit.FillPercent, recs.FillPercent = appendFill, appendFill
	seq, hash, err := readHead(meta)
	if err != nil {
		return err
	}
	if first := frames[0]; first.seq != seq+1 || !bytes.Equal(first.prev, hash) {
		return fmt.Errorf("journal record %d does not continue the audit log at %d: %w", first.seq, seq, errdefs.ErrInternal)
	}
	leaves := make([][]byte, len(frames))
	for i, f := range frames {
		key := seqKey(f.seq)
		// As in appendAuditTo: a record past the head is damage, and
		// overwriting it would hide it.
		if audit.Get(key) != nil {
			return fmt.Errorf("audit log damaged: a record already exists at seq %d, past the head (run audit verify): %w", f.seq, errdefs.ErrInternal)
		}
		if err := audit.Put(key, f.audit); err != nil {
			return err
		}
		if f.sig != nil {
			if recs.Get(key) != nil {
				return fmt.Errorf("signature records damaged: one already names audit record %d, past the head (run audit verify): %w", f.seq, errdefs.ErrInternal)
			}
			if err := recs.Put(key, f.sig); err != nil {
				return err
			}
		}
		leaves[i] = f.leaf
	}
	last := frames[len(frames)-1]
	if err := meta.Put(keyAuditHead, append(seqKey(last.seq), last.hash...)); err != nil {
		return err
	}
	if err := appendLeaves(tx, seq, leaves); err != nil {
		return err
	}
	return meta.Put(keyJournalPos, binary.BigEndian.AppendUint64(nil, uint64(last.end)))
}

// sync returns once every frame acknowledged before the call is applied.
func (j *journal) sync() error {
	j.mu.Lock()
	target := j.applied
	if n := len(j.unapplied); n > 0 {
		target = j.unapplied[n-1].seq
	}
	j.mu.Unlock()
	for {
		j.mu.Lock()
		done := j.applied >= target
		j.mu.Unlock()
		if done {
			return nil
		}
		if err := j.applyOnce(); err != nil {
			return err
		}
	}
}

// drain applies every frame. j.wmu must be held, so none is added.
func (j *journal) drain() error {
	for {
		j.mu.Lock()
		n := len(j.unapplied)
		j.mu.Unlock()
		if n == 0 {
			return nil
		}
		if err := j.applyOnce(); err != nil {
			return err
		}
	}
}

// reloadHead reads the audit head back from bbolt after a direct
// transaction may have moved it. j.wmu must be held and nothing unapplied.
func (j *journal) reloadHead() error {
	var seq uint64
	var hash []byte
	err := j.s.w.view(j.s.db, func(tx *bolt.Tx) error {
		meta, err := bucket(tx, bucketKeyMeta)
		if err != nil {
			return err
		}
		seq, hash, err = readHead(meta)
		return err
	})
	if err != nil {
		return mapBoltErr(err)
	}
	j.mu.Lock()
	j.headSeq, j.headHash, j.applied = seq, hash, seq
	j.mu.Unlock()
	return nil
}

// unappliedSigs is how many acknowledged signature records wait to be
// applied (and then indexed).
func (j *journal) unappliedSigs() int {
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.sigs
}

// countSigs is how many of frames carry a signature record.
func countSigs(frames []*frame) int {
	n := 0
	for _, f := range frames {
		if f.sig != nil {
			n++
		}
	}
	return n
}

// head returns the newest acknowledged audit record's seq and hash.
func (j *journal) head() (uint64, []byte) {
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.headSeq, bytes.Clone(j.headHash)
}

// close refuses new records, waits for the running group, applies every
// frame and stops the applier.
func (j *journal) close() error {
	j.mu.Lock()
	j.closed = true
	j.mu.Unlock()
	j.wmu.Lock() // the running group, if any, is done
	err := j.drain()
	j.wmu.Unlock()
	close(j.stop)
	<-j.stopped
	if err == nil {
		// Everything is in the file: the journal is needed no more.
		// Guarded: Close runs where no call's recovery is.
		err = Guard(j.s.path, func() error {
			return mapBoltErr(j.s.w.update(j.s.db, func(tx *bolt.Tx) error {
				meta, err := bucket(tx, bucketKeyMeta)
				if err != nil {
					return err
				}
				return meta.Delete(keyJournalOpen)
			}))
		})
	}
	if cerr := j.f.Close(); err == nil && cerr != nil {
		err = cerr
	}
	return err
}

// checkJournal fails a read-only open of a database whose journal holds
// acknowledged records not yet applied: signerd stopped without applying
// them, and its next start will.
func checkJournal(s *Store) error {
	path := journalPath(s.path)
	// A file signerd had open (a crash, or a copy of a running database)
	// without its whole journal may lack records signerd returned.
	if err := checkJournalBelongs(s, path, false); err != nil {
		return err
	}
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("open journal %s: %w", path, errors.Join(errdefs.ErrUnavailable, err))
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return fmt.Errorf("stat journal %s: %w", path, errors.Join(errdefs.ErrUnavailable, err))
	}
	var seq uint64
	var hash []byte
	var pos int64
	damaged := false
	if err := s.w.view(s.db, func(tx *bolt.Tx) error {
		var err error
		if seq, hash, pos, err = journalState(tx); err != nil {
			return err
		}
		damaged = pastHead(tx, seq) != nil
		return nil
	}); err != nil {
		return mapBoltErr(err)
	}
	if damaged {
		// signerd would not apply the journal to this file either (it
		// refuses to append after records past the head): let the
		// reader in, so that audit verify can say what is wrong.
		return nil
	}
	j := &journal{f: f, size: fi.Size()}
	if frames := j.scan(pos, seq, hash); len(frames) > 0 {
		return fmt.Errorf("journal %s holds %d audit records (seq %d to %d) that signerd acknowledged but had not yet written into %s (it did not stop cleanly): start signerd on it once, and stop it, to apply them: %w",
			path, len(frames), frames[0].seq, frames[len(frames)-1].seq, s.path, errdefs.ErrFailedPrecondition)
	}
	return nil
}

// fdatasync flushes f's data (and only the metadata needed to read it).
func fdatasync(f *os.File) error { return unix.Fdatasync(int(f.Fd())) }

// Sync returns once every record acknowledged before the call is in the
// database file itself (it is on disk already, in the journal).
func (s *Store) Sync(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if s.j == nil {
		return nil
	}
	return s.j.sync()
}

// CheckHealth implements store.HealthChecker: the file serves while its
// journal can be written and applied. A failed journal write stops
// signing until a restart, and applies that keep failing (a full disk)
// stop the log's readers and, once the journal is full, signing: either
// turns the daemon's health to NOT_SERVING, so that a supervisor or a
// load balancer sees what the callers' errors say.
func (s *Store) CheckHealth(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := s.w.get(); err != nil {
		return err
	}
	if s.j == nil {
		return nil
	}
	s.j.mu.Lock()
	failed, applyErr := s.j.failed, s.j.applyErr
	s.j.mu.Unlock()
	switch {
	case failed != nil:
		return fmt.Errorf("the journal cannot be written; signing stops until signerd restarts: %w", failed)
	case applyErr != nil:
		return fmt.Errorf("the journal cannot be applied to the database: %w", applyErr)
	}
	return nil
}

// isDamaged returns the damage an apply met in the file, or nil.
func (j *journal) isDamaged() error {
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.damaged
}
