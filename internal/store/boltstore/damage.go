package boltstore

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"os"
	"runtime/debug"

	bolt "go.etcd.io/bbolt"

	"github.com/signerd/signerd/internal/errdefs"
)

// Damaged database files.
//
// bbolt trusts its file: it maps it into memory and follows page numbers
// without bounds checks, so a truncated or bit-flipped file makes it panic
// (an assertion) or fault (a read past the end of the file, SIGBUS/SIGSEGV,
// which kills a Go process unless debug.SetPanicOnFault is on). Offline
// audit verification reads copies of files from hosts that may be
// compromised, so it must survive both and say what it found. CheckFile
// reads the two meta pages itself, with ordinary reads, before bbolt maps
// anything; Guard turns faults and panics inside bbolt into a *DamageError;
// WalkPages then touches every reachable page in the calling goroutine
// (where Guard can catch what goes wrong) before bbolt's own consistency
// check, which runs in a goroutine of its own, may look at them.

// bbolt's on-disk meta page (go.etcd.io/bbolt/internal/common: page and
// Meta): a 16-byte page header, then magic, version, page size, flags (4
// bytes each), the root bucket (root page, sequence), the free list page,
// the page count (the high-water mark), the txid and an FNV-64a checksum of
// everything in the meta before it; native byte order (little-endian on
// every platform signerd ships for).
const (
	metaMagic       = 0xED0CDAED
	metaVersion     = 2
	pageHeaderSize  = 16
	metaChecksumOff = 56 // of the checksum, from the start of the meta
	metaSize        = metaChecksumOff + 8
	minPageSize     = 512
	maxPageSize     = 1 << 16
	// maxSearchedPageSize is the largest page size tried for meta page 1
	// when meta page 0 cannot say (bbolt tries up to 16 MiB too).
	maxSearchedPageSize = 1 << 24
)

// DamageError is damage to the database file itself, below the level of
// records: bbolt could not read part of it, or its structure is
// inconsistent. Problems lists what was found, first first.
type DamageError struct {
	Path     string
	Problems []string
	// MetaFallback: the only damage is one meta page, and bbolt reads the
	// other. A power loss while a commit writes its meta page leaves the
	// file so, and bbolt's fallback to the previous transaction is its
	// recovery (the journal still holds what that transaction applied).
	MetaFallback bool
	// Stack is where Guard recovered the panic, for a log line (a bug
	// panics as damage does, and only the stack tells them apart).
	Stack string
}

func (e *DamageError) Error() string {
	msg := fmt.Sprintf("database file %s is damaged", e.Path)
	for i, p := range e.Problems {
		sep := "; "
		if i == 0 {
			sep = ": "
		}
		msg += sep + p
	}
	return msg
}

// Unwrap: a damaged file no longer satisfies what readers rely on.
func (e *DamageError) Unwrap() error { return errdefs.ErrFailedPrecondition }

type meta struct {
	pageSize uint32
	pages    uint64 // high-water mark: pages in use, from page 0
	txid     uint64
	ok       bool // magic, version and checksum are right
	magic    bool // the magic alone is right: this was a bbolt file
}

func readMeta(b []byte) meta {
	if len(b) < pageHeaderSize+metaSize {
		return meta{}
	}
	m := b[pageHeaderSize : pageHeaderSize+metaSize]
	le := binary.LittleEndian
	h := fnv.New64a()
	h.Write(m[:metaChecksumOff])
	return meta{
		pageSize: le.Uint32(m[8:12]),
		pages:    le.Uint64(m[40:48]),
		txid:     le.Uint64(m[48:56]),
		magic:    le.Uint32(m[0:4]) == metaMagic,
		ok:       le.Uint32(m[0:4]) == metaMagic && le.Uint32(m[4:8]) == metaVersion && h.Sum64() == le.Uint64(m[metaChecksumOff:]),
	}
}

// CheckFile examines the database file at path with plain reads, without
// bbolt: both meta pages (magic, version, checksum) and whether the file
// still holds every page the newest valid meta page counts. It returns nil
// for a file that looks whole, a *DamageError describing a damaged bbolt
// file, or an error wrapping errdefs.ErrFailedPrecondition for a file in
// which neither meta page carries bbolt's magic (not a database at all).
func CheckFile(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return openError(path, err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return openError(path, err)
	}
	size := st.Size()
	first := make([]byte, pageHeaderSize+metaSize)
	n, _ := io.ReadFull(f, first)
	m0 := readMeta(first[:n])
	// Meta page 1 is one page in. With meta page 0 intact, its page size
	// says where; without it, every page size bbolt could have used is
	// tried, as bbolt itself does (the file may come from a host with
	// another page size than this one's).
	second := make([]byte, pageHeaderSize+metaSize)
	var m1 meta
	if pageSize := int64(m0.pageSize); m0.ok && pageSize >= minPageSize && pageSize <= maxSearchedPageSize && pageSize&(pageSize-1) == 0 {
		n, _ = f.ReadAt(second, pageSize)
		m1 = readMeta(second[:n])
	} else {
		// What is reported when no page size finds an intact one.
		n, _ = f.ReadAt(second, int64(os.Getpagesize()))
		m1 = readMeta(second[:n])
		for pageSize := int64(minPageSize); pageSize <= maxSearchedPageSize; pageSize *= 2 {
			n, _ = f.ReadAt(second, pageSize)
			if m := readMeta(second[:n]); m.ok && int64(m.pageSize) == pageSize {
				m1 = m
				break
			}
		}
	}
	if !m0.magic && !m1.magic {
		return fmt.Errorf("%s is not a bbolt database (no bbolt meta page): %w", path, errdefs.ErrFailedPrecondition)
	}

	var problems []string
	for i, m := range []meta{m0, m1} {
		if !m.ok {
			problems = append(problems, fmt.Sprintf("meta page %d is damaged (bad magic, version or checksum)", i))
		}
	}
	newest := m0
	if m1.ok && (!m0.ok || m1.txid > m0.txid) {
		newest = m1
	}
	switch {
	case !m0.ok && !m1.ok:
		problems = append(problems, "no meta page is intact: nothing can be read")
	case !m0.ok || !m1.ok:
		problems = append(problems, fmt.Sprintf("bbolt falls back to the intact one (transaction %d), losing any later committed transaction", newest.txid))
	}
	if newest.ok {
		if want := int64(newest.pages) * int64(newest.pageSize); size < want {
			problems = append(problems, fmt.Sprintf("the file is truncated: it has %d bytes, its %d pages of %d bytes need %d", size, newest.pages, newest.pageSize, want))
		}
	}
	if problems != nil {
		return &DamageError{Path: path, Problems: problems, MetaFallback: len(problems) == 2 && m0.ok != m1.ok}
	}
	return nil
}

// Guard runs fn, which reads a bbolt file, so that damage cannot kill the
// process: faults in the memory map become panics (for this goroutine), and
// any panic is recovered and returned as a *DamageError naming it. bbolt's
// View rolls its transaction back while the panic unwinds, so the Store can
// still be closed. Open runs under it, so a damaged file stops the daemon's
// start with a message; offline verification reads whole files under it.
func Guard(path string, fn func() error) (err error) {
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		if r := recover(); r != nil {
			err = &DamageError{Path: path, Problems: []string{fmt.Sprintf("bbolt could not read it: %v", r)}, Stack: string(debug.Stack())}
		}
	}()
	return fn()
}

// WalkPages reads every key of every bucket, which touches every reachable
// branch and leaf page in this goroutine (run it under Guard), then runs
// bbolt's consistency check (CheckPages). It returns nil or a
// *DamageError.
func (s *Store) WalkPages(ctx context.Context) error {
	err := s.viewLog(ctx, func(tx *bolt.Tx) error {
		return tx.ForEach(func(_ []byte, b *bolt.Bucket) error { return walkBucket(b) })
	})
	if err != nil {
		return err
	}
	if err := s.CheckPages(ctx); err != nil {
		if errors.Is(err, errdefs.ErrFailedPrecondition) {
			return &DamageError{Path: s.path, Problems: []string{err.Error()}}
		}
		return err
	}
	return nil
}

func walkBucket(b *bolt.Bucket) error {
	return b.ForEach(func(k, v []byte) error {
		if v == nil {
			if child := b.Bucket(k); child != nil {
				return walkBucket(child)
			}
		}
		return nil
	})
}

// ReadableAudit counts the audit records that can be read in key order
// before damage stops the reading: the last seq read and how many. Run it
// under Guard; its partial answer survives a panic through the pointers.
func (s *Store) ReadableAudit(ctx context.Context, lastSeq *uint64, count *int) error {
	return s.viewLog(ctx, func(tx *bolt.Tx) error {
		audit, err := bucket(tx, bucketKeyAudit)
		if err != nil {
			return err
		}
		return audit.ForEach(func(k, _ []byte) error {
			if len(k) == 8 {
				*lastSeq = binary.BigEndian.Uint64(k)
			}
			*count++
			return nil
		})
	})
}
