package boltstore

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	bolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"
	"golang.org/x/sys/unix"

	"github.com/signerd/signerd/internal/errdefs"
	"github.com/signerd/signerd/internal/store"
)

// Defaults for Options.
const (
	// DefaultTimeout is how long Open waits for the file lock.
	DefaultTimeout = time.Second
	// defaultMaxBatchSize caps the records in one group commit.
	defaultMaxBatchSize = 1000
)

// Options configure Open. The zero value is usable.
type Options struct {
	// Logger receives migration and open messages; nil discards them.
	Logger *slog.Logger
	// Timeout bounds the wait for the file lock held by another process;
	// 0 means DefaultTimeout.
	Timeout time.Duration
	// ReadOnly opens the file with a shared lock and refuses every write
	// (errdefs.ErrFailedPrecondition). It never migrates: a file with an
	// older schema must be opened read-write once first.
	ReadOnly bool
	// MaxBatchSize caps the records in one group commit (PutSignature,
	// AppendAudit); 0 means 1000.
	MaxBatchSize int
	// JournalSize is the size of the journal created beside the file
	// (journal.go); 0 means 64 MiB. A larger existing journal is kept.
	JournalSize int64
	// IndexMergeAt is how many signature records are indexed only in
	// memory before a merge writes them into the persisted digest index
	// (sigindex.go); 0 means 32768.
	IndexMergeAt int
	// AcceptJournalLoss opens a file that was not closed cleanly although
	// its journal is missing or truncated (records acknowledged before the
	// stop may be lost); without it, Open refuses. JournalLoss then says
	// what was accepted, for the audit log.
	AcceptJournalLoss bool
}

// Store is store.Store on one bbolt file. It is safe for concurrent use.
type Store struct {
	db   *bolt.DB
	j    *journal // nil when read-only
	path string
	log  *slog.Logger
	// journalLoss: what Options.AcceptJournalLoss accepted at Open.
	journalLoss string

	maxBatch int

	// idx is the digest index of the signature records a merge has not
	// yet written to sigindex/ (sigindex.go).
	idx pendingIndex
	// mergeMu guards the merge's state: whether one runs, the pending
	// count that starts the next, and whether Close has begun.
	mergeMu     sync.Mutex
	merging     bool
	closed      bool
	mergeAt     int
	mergeAtBase int
	mergeWG     sync.WaitGroup
	mergeDone   chan struct{} // closed when the running merge ends
	mergeErr    error         // the last merge's outcome
	mergeChunk  int
	merges      mergeCounts
	// mergeHook, if set (tests), runs before each merge transaction with
	// the chunk's number; an error aborts the merge there, as a crash
	// would.
	mergeHook func(chunk int) error
	readOnly  bool
	closeOnce sync.Once
	// removeOnClose: Close removes the file and its journal (RemoveOnClose).
	removeOnClose bool
	// created: this Open made the file (Created).
	created bool
	// revoked: the key versions revoked in the file (revoked.go).
	revoked revokedSet
	// w: whether a transaction wedged the file (wedge.go).
	w *wedge
	// commitsSeen: the largest Commits returned.
	commitsSeen atomic.Uint64
}

var _ store.Store = (*Store)(nil)

// Open opens (creating it 0600 if absent) the database at path and brings
// its schema up to date in one transaction. It fails with
// errdefs.ErrUnavailable if another process holds the file for longer than
// opts.Timeout, and with errdefs.ErrFailedPrecondition if the file's schema
// is newer than this code.
func Open(ctx context.Context, path string, opts Options) (s *Store, err error) {
	// A damaged file must stop start-up (or an offline reader) with a
	// message, not a panic or a fault: bbolt follows the file's page
	// numbers without checks. Everything Open reads (the meta and free
	// pages, the migration's and recovery's buckets) is read in this
	// goroutine, so Guard catches what goes wrong; the file is checked with
	// plain reads once it is locked.
	err = Guard(path, func() error {
		// A file removed while this open waited for its lock (a failed
		// first start of another signerd removes what it created, holding
		// the lock) is not served: bbolt opens the file before it locks
		// it, and would map the removed inode. Open again, a few times.
		for attempt := 1; ; attempt++ {
			var err error
			s, err = open(ctx, path, opts)
			if !errors.Is(err, errFileRemoved) || attempt == 3 {
				return err
			}
			if opts.Logger != nil {
				opts.Logger.Warn("the database was removed while this open waited for its lock; opening again", "db", path)
			}
		}
	})
	if err != nil {
		return nil, err
	}
	return s, nil
}

// openedHook, when set by tests, runs when bbolt has opened the file and
// before it locks it.
var openedHook func()

// errFileRemoved: the file open locked is no longer at its path.
var errFileRemoved = fmt.Errorf("database file removed while waiting for its lock: %w", errdefs.ErrUnavailable)

// open is Open without the guard.
func open(ctx context.Context, path string, opts Options) (*Store, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Timeout <= 0 {
		opts.Timeout = DefaultTimeout
	}
	log := opts.Logger.With("db", path)

	// A journal without its database is refused before bbolt creates a
	// new file there (openJournal says why).
	if !opts.ReadOnly && !exists(path) {
		if fi, err := os.Stat(journalPath(path)); err == nil && fi.Size() > 0 {
			return nil, fmt.Errorf("journal %s exists but its database %s does not: it belongs to a database that is gone, and its records would be replayed into a new one; move it away (keep it if that database is to be restored beside it): %w",
				journalPath(path), path, errdefs.ErrFailedPrecondition)
		}
	}
	if err := precheck(path, opts.Logger); err != nil {
		return nil, err
	}
	// A file this open creates is removed again, with its journal, if the
	// open then fails (no room for the journal, say): a start that failed
	// must not leave a database behind for the next one to find. It is
	// removed while this process holds its lock; another open waiting for
	// that lock on the same file sees it gone (errFileRemoved) and starts
	// again.
	created := !opts.ReadOnly && !exists(path) && !exists(journalPath(path))
	// 0600: the file holds who may sign with which key and the audit log;
	// nobody but the daemon's user needs to read it.
	var opened *os.File // what bbolt opened, to compare with the path once locked
	db, err := bolt.Open(path, 0o600, &bolt.Options{
		Timeout:  opts.Timeout,
		ReadOnly: opts.ReadOnly,
		// A read-only open would load the freelist first in tx.Check,
		// which bbolt runs on a goroutine of its own, where Guard does
		// not reach: a damaged freelist would end the process (signctl
		// audit verify --db). Loaded here, under Open's Guard.
		PreLoadFreelist: opts.ReadOnly,
		OpenFile: func(name string, flag int, perm os.FileMode) (*os.File, error) {
			f, err := os.OpenFile(name, flag, perm)
			opened = f
			if openedHook != nil {
				openedHook()
			}
			return f, err
		},
	})
	if err != nil {
		return nil, openError(path, err)
	}
	if !stillAt(opened, path) {
		_ = db.Close()
		return nil, errFileRemoved
	}
	w := newWedge(path)
	if created {
		// Made by this open only if bbolt initialised it here: another
		// open that made the file between the check above and the lock
		// has committed its schema by now (transaction 1 is bbolt's own
		// initialisation).
		var txid int
		_ = w.view(db, func(tx *bolt.Tx) error { txid = tx.ID(); return nil })
		created = txid <= 1
	}
	// closeDB closes db unless a transaction wedged it (wedge.go): then a
	// bbolt lock may be held for good, Close would wait for it forever,
	// and the file is left to the process's exit.
	closeDB := func() {
		if err := w.get(); err != nil {
			log.Error("database file left open: a transaction panicked on it", "err", err)
			return
		}
		_ = db.Close()
	}
	// fail closes db after a failed open (removing what it created) and
	// returns err.
	fail := func(err error) (*Store, error) {
		counters.Delete(db)
		if created {
			removeDatabase(path, log)
		}
		closeDB()
		return nil, err
	}
	// Damage found by a panic below (Open's Guard turns it into an error)
	// must not leave the file locked and mapped: a retry, or an offline
	// reader in this process, would find it "in use".
	defer func() {
		if r := recover(); r != nil {
			counters.Delete(db)
			closeDB()
			panic(r)
		}
	}()
	if fi, err := os.Stat(path); err == nil && fi.Mode().Perm()&0o077 != 0 {
		log.Warn("database file is accessible to group or others; chmod 600 it", "mode", fi.Mode().Perm().String())
	}

	if opts.ReadOnly {
		err = w.view(db, func(tx *bolt.Tx) error {
			v, err := readVersion(tx)
			switch {
			case err != nil:
				return err
			case v > schemaVersion():
				return errNewerSchema(path, v)
			case v < minReadOnlyVersion:
				return fmt.Errorf("database %s has schema version %d, older than %d: open it read-write once to migrate it: %w",
					path, v, minReadOnlyVersion, errdefs.ErrFailedPrecondition)
			}
			return nil
		})
	} else {
		var from int
		err = w.update(db, func(tx *bolt.Tx) error {
			from, err = migrate(tx, path, schemaVersion())
			return err
		})
		if err == nil && from < schemaVersion() {
			log.Info("migrated database schema", "from", from, "to", schemaVersion())
		}
	}
	if err != nil {
		return fail(mapBoltErr(err))
	}
	log.Debug("opened database", "schema", schemaVersion(), "read_only", opts.ReadOnly)
	maxBatch := opts.MaxBatchSize
	if maxBatch <= 0 {
		maxBatch = defaultMaxBatchSize
	}
	mergeAt := opts.IndexMergeAt
	if mergeAt <= 0 {
		mergeAt = defaultMergeAt
	}
	counters.Store(db, new(treeCounter))
	s := &Store{db: db, w: w, path: path, log: log, maxBatch: maxBatch,
		mergeAt: mergeAt, mergeAtBase: mergeAt, mergeChunk: defaultMergeChunk, readOnly: opts.ReadOnly, created: created}
	if err := s.loadPending(); err != nil {
		return fail(mapBoltErr(err))
	}
	if opts.ReadOnly {
		// Records only in the journal would be missing from what a
		// reader of this file sees: refuse rather than show a log
		// shorter than what signerd returned.
		if err := checkJournal(s); err != nil {
			counters.Delete(db)
			closeDB()
			return nil, err
		}
		return s, nil
	}
	size := opts.JournalSize
	if size <= 0 {
		size = defaultJournalSize
	}
	if size < minJournalSize {
		return fail(fmt.Errorf("journal size %d bytes is below the minimum %d: %w", size, minJournalSize, errdefs.ErrInvalidArgument))
	}
	if err := s.w.view(s.db, func(tx *bolt.Tx) error { return loadRevoked(tx, &s.revoked) }); err != nil {
		return fail(mapBoltErr(err))
	}
	j, err := openJournal(s, size, opts.AcceptJournalLoss)
	if err != nil {
		s.mergeMu.Lock()
		s.closed = true
		s.mergeMu.Unlock()
		s.mergeWG.Wait()
		return fail(err)
	}
	s.j = j
	s.maybeMerge(s.idx.len())
	return s, nil
}

// removeDatabase removes the file at path and its journal, the journal
// first (a journal left without its database stops the next open), while
// the caller holds the file's lock.
func removeDatabase(path string, log *slog.Logger) {
	for _, p := range []string{journalPath(path), path} {
		if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
			log.Error("remove the database a failed first start created", "path", p, "err", err)
		}
	}
}

// stillAt reports whether f is the file at path (not removed or replaced
// since it was opened).
func stillAt(f *os.File, path string) bool {
	if f == nil {
		return false
	}
	held, err := f.Stat()
	if err != nil {
		return false
	}
	now, err := os.Stat(path)
	return err == nil && os.SameFile(held, now)
}

func openError(path string, err error) error {
	switch {
	case errors.Is(err, bolterrors.ErrTimeout):
		return fmt.Errorf("database %s is in use by another process (is signerd already running?): %w", path, errdefs.ErrUnavailable)
	case errors.Is(err, fs.ErrNotExist):
		if dir := filepath.Dir(path); !exists(dir) {
			// A read-write open creates the file, not its directory.
			return fmt.Errorf("database %s: its directory %s does not exist: %w", path, dir, errdefs.ErrNotFound)
		}
		return fmt.Errorf("database %s does not exist: %w", path, errdefs.ErrNotFound)
	case errors.Is(err, fs.ErrPermission):
		return fmt.Errorf("open database %s: %w", path, errors.Join(errdefs.ErrPermissionDenied, err))
	case errors.Is(err, bolterrors.ErrInvalid), errors.Is(err, bolterrors.ErrVersionMismatch), errors.Is(err, bolterrors.ErrChecksum):
		return fmt.Errorf("database %s is not a usable bbolt file: %w", path, errors.Join(errdefs.ErrFailedPrecondition, err))
	default:
		return fmt.Errorf("open database %s: %w", path, errors.Join(errdefs.ErrUnavailable, err))
	}
}

// Path returns the database file's path.
func (s *Store) Path() string { return s.path }

// Close releases the file and its lock. It applies the journal, waits for
// open transactions and a running merge, and merges what is pending so
// that the next Open has little to read back.
func (s *Store) Close() error {
	defer counters.Delete(s.db)
	var jerr error
	if s.j != nil {
		s.closeOnce.Do(func() {
			if jerr = s.j.close(); jerr != nil {
				// Nothing is lost: the next Open applies the journal.
				s.log.Error("applying the journal at close failed", "err", jerr)
			}
		})
	}
	s.mergeMu.Lock()
	already := s.closed
	s.closed = true
	s.mergeMu.Unlock()
	s.mergeWG.Wait()
	s.mergeMu.Lock()
	var mergeDamage *DamageError
	errors.As(s.mergeErr, &mergeDamage)
	s.mergeMu.Unlock()
	// Not into a file an apply or a merge found damaged, or that a write
	// transaction wedged: the merge would meet it too. Guarded, as the
	// background merges are, for damage nothing met yet: Close runs where
	// no call's recovery is.
	if !already && !s.readOnly && s.idx.len() > 0 && mergeDamage == nil && s.w.get() == nil && (s.j == nil || s.j.isDamaged() == nil) {
		if err := Guard(s.path, s.mergeIndex); err != nil {
			// Nothing is lost: the next Open indexes these records again.
			s.log.Warn("signature index merge at close failed", "err", err)
		}
	}
	if s.removeOnClose {
		// Before the lock is released: another open waiting for it on
		// this file then finds it gone and starts again (stillAt).
		removeDatabase(s.path, s.log)
	}
	if err := s.w.get(); err != nil {
		// A bbolt lock may be held for good: closing would wait for it
		// forever. The process's exit releases the file.
		s.log.Error("database file left open at close: a transaction panicked on it", "err", err)
		return err
	}
	if err := s.db.Close(); err != nil {
		return err
	}
	return jerr
}

// RemoveOnClose makes Close remove the file and its journal, while it
// still holds the file's lock: for a database a failed first start made,
// which must not be left for the next start to find.
func (s *Store) RemoveOnClose() { s.removeOnClose = true }

// Created reports whether this Open made the file (neither it nor a
// journal was there when the open that succeeded began).
func (s *Store) Created() bool { return s.created }

// JournalLoss describes the journal loss Options.AcceptJournalLoss let
// Open accept, now or at a start that stopped before recording it ("" when
// there is none to record), for the daemon to audit.
func (s *Store) JournalLoss() string { return s.journalLoss }

// JournalLossRecorded says the audit log now holds JournalLoss: it is not
// reported again.
func (s *Store) JournalLossRecorded() error {
	err := s.w.update(s.db, func(tx *bolt.Tx) error {
		meta, err := bucket(tx, bucketKeyMeta)
		if err != nil {
			return err
		}
		return meta.Delete(keyJournalLoss)
	})
	if err != nil {
		return mapBoltErr(err)
	}
	s.journalLoss = ""
	return nil
}

// precheck refuses an existing file whose meta pages are all damaged or
// which is shorter than its pages (CheckFile, plain reads), before bbolt
// maps it: bbolt would panic or fault on it, inside bolt.Open for some
// damage, with the file's lock taken. The check is made only while no
// process holds the file for writing (a shared lock, not waited for), so
// that no commit is halfway through a meta page; a file in use is left to
// bolt.Open, which says so. One damaged meta page is what a power loss
// during a commit leaves, and bbolt reads the other: that is logged, not
// refused.
func precheck(path string, log *slog.Logger) error {
	f, err := os.Open(path)
	if err != nil {
		return nil // absent (bbolt creates it) or unreadable (bbolt says so)
	}
	defer f.Close()
	if fi, err := f.Stat(); err != nil || fi.Size() == 0 {
		return nil
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_SH|unix.LOCK_NB); err != nil {
		return nil // a writer has it: bolt.Open waits, then says it is in use
	}
	defer func() { _ = unix.Flock(int(f.Fd()), unix.LOCK_UN) }()
	err = CheckFile(path)
	if de := (*DamageError)(nil); errors.As(err, &de) && de.MetaFallback {
		log.Warn("one meta page of the database is damaged; bbolt reads the other (as after a power loss during a commit)", "db", path, "detail", err.Error())
		return nil
	}
	return err
}

// exists reports whether anything is at path.
func exists(path string) bool {
	_, err := os.Lstat(path)
	return !errors.Is(err, fs.ErrNotExist)
}
