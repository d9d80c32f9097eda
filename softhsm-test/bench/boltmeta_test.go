package bench

// Counting the daemon's durable commits from outside it.
//
// bbolt numbers read-write transactions: each commit writes the meta page
// with the next transaction id (and fdatasyncs twice: data pages, then the
// meta page). The two meta pages at the start of the file hold the last two
// commits; the valid one with the higher id is the current state. Reading
// them (pread, no lock) from the live file while the daemon runs gives the
// commit count before and after a load phase; signatures per commit is then
// the phase's successful signatures over the id's growth. Every commit in
// the phase counts, not only those carrying signatures, so the figure is
// conservative. After the run, verifyCommitCount opens the file with bbolt
// itself (read-only, daemon stopped) and checks that tx.ID() agrees with
// this reader and that the signatures bucket holds exactly the signatures
// the suite counted.
//
// Layout (bbolt v1.5, go.etcd.io/bbolt/internal/common): a 16-byte page
// header, then the meta: magic u32, version u32, pageSize u32, flags u32,
// root bucket (pgid u64, sequence u64), freelist u64, pgid u64, txid u64,
// checksum u64 = FNV-64a of the 56 bytes before it. Native (little) endian.

import (
	"encoding/binary"
	"fmt"
	"hash/fnv"
	"io"
	"os"

	bolt "go.etcd.io/bbolt"
)

const (
	boltMagic      = 0xED0CDAED
	boltPageHeader = 16
	boltMetaSum    = 56 // bytes covered by the checksum
)

// boltTxID returns the id of the last committed transaction of the bbolt
// file at path.
func boltTxID(path string) (uint64, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	first := make([]byte, boltPageHeader+boltMetaSum+8)
	if _, err := io.ReadFull(f, first); err != nil {
		return 0, fmt.Errorf("read %s meta page 0: %w", path, err)
	}
	pageSize := int64(binary.LittleEndian.Uint32(first[boltPageHeader+8:]))
	var best uint64
	found := false
	for i, off := range []int64{0, pageSize} {
		buf := make([]byte, len(first))
		if _, err := f.ReadAt(buf, off); err != nil {
			return 0, fmt.Errorf("read %s meta page %d: %w", path, i, err)
		}
		m := buf[boltPageHeader:]
		if binary.LittleEndian.Uint32(m) != boltMagic {
			continue
		}
		h := fnv.New64a()
		h.Write(m[:boltMetaSum])
		if h.Sum64() != binary.LittleEndian.Uint64(m[boltMetaSum:]) {
			continue // being written: the other page is the current one
		}
		if id := binary.LittleEndian.Uint64(m[48:]); !found || id > best {
			best, found = id, true
		}
	}
	if !found {
		return 0, fmt.Errorf("%s: no valid bbolt meta page (pageSize %d)", path, pageSize)
	}
	return best, nil
}

// boltCheck opens the (closed) database read-only with bbolt and returns
// its last transaction id and the number of signature records.
func boltCheck(path string) (txid uint64, signatures int, err error) {
	db, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true})
	if err != nil {
		return 0, 0, err
	}
	defer db.Close()
	err = db.View(func(tx *bolt.Tx) error {
		txid = uint64(tx.ID())
		root := tx.Bucket([]byte("v1"))
		if root == nil {
			return fmt.Errorf("%s: no v1 bucket", path)
		}
		// Signature records of schema 5 on are in sigrecords/; older ones
		// in signatures/.
		for _, name := range []string{"signatures", "sigrecords"} {
			b := root.Bucket([]byte(name))
			if b == nil {
				return fmt.Errorf("%s: no v1/%s bucket", path, name)
			}
			signatures += b.Stats().KeyN
		}
		return nil
	})
	return txid, signatures, err
}
