package etcdstore

import (
	"encoding/hex"
	"fmt"
	"strconv"
	"strings"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// schemaVersion is the layout drawn in doc.go. Changing a key's name or a
// value's shape is a new version, with a migration.
//
// "2" added the transparency log (audit/tree/, and the tree in audit/head);
// Open migrates a "1" prefix (migrate.go).
const schemaVersion = "2"

// DefaultPrefix is the prefix every key lives under unless Options.Prefix
// says otherwise.
const DefaultPrefix = "/signerd/"

// layout builds the keys of one prefix (doc.go).
type layout struct {
	prefix string // ends with "/"
}

func newLayout(prefix string) (layout, error) {
	if prefix == "" {
		prefix = DefaultPrefix
	}
	if !strings.HasSuffix(prefix, "/") {
		prefix += "/"
	}
	if strings.ContainsAny(prefix, "\x00\n") {
		return layout{}, fmt.Errorf("etcd prefix %q contains a NUL or newline", prefix)
	}
	return layout{prefix: prefix}, nil
}

func (l layout) schema() string         { return l.prefix + "meta/schema" }
func (l layout) importMark() string     { return l.prefix + "meta/import" }
func (l layout) keysDir() string        { return l.prefix + "keys/" }
func (l layout) key(name string) string { return l.keysDir() + name }
func (l layout) fingerprint(fp string) string {
	return l.prefix + "fingerprints/" + fp
}
func (l layout) ckaID(id []byte) string { return l.prefix + "ckaids/" + hex.EncodeToString(id) }
func (l layout) orgsDir() string        { return l.prefix + "orgs/" }
func (l layout) org(id string) string   { return l.orgsDir() + id }
func (l layout) signaturesDir() string  { return l.prefix + "signatures/" }
func (l layout) signatures(digest []byte) string {
	return l.signaturesDir() + hex.EncodeToString(digest) + "/"
}
func (l layout) signature(digest []byte, seq uint64) string {
	return l.signatures(digest) + seqHex(seq)
}
func (l layout) recordsDir() string           { return l.prefix + "audit/records/" }
func (l layout) record(seq uint64) string     { return l.recordsDir() + seqHex(seq) }
func (l layout) head() string                 { return l.prefix + "audit/head" }
func (l layout) auditKey() string             { return l.prefix + "audit/key" }
func (l layout) logKey() string               { return l.prefix + "audit/logkey" }
func (l layout) checkpointsDir() string       { return l.prefix + "audit/checkpoints/" }
func (l layout) checkpoint(seq uint64) string { return l.checkpointsDir() + seqHex(seq) }

// treeDir holds the transparency log's nodes, one key per batch named for
// its last record (tree.go).
func (l layout) treeDir() string            { return l.prefix + "audit/tree/" }
func (l layout) tree(lastSeq uint64) string { return l.treeDir() + seqHex(lastSeq) }

// seqHex is a sequence number as 16 lowercase hex digits: fixed width, so
// that key order is numeric order.
func seqHex(seq uint64) string { return fmt.Sprintf("%016x", seq) }

// parseSeq reads the seq at the end of key after dir; ok is false if the
// key is not dir followed by 16 hex digits.
func parseSeq(key, dir string) (uint64, bool) {
	s, found := strings.CutPrefix(key, dir)
	if !found || len(s) != 16 || strings.ToLower(s) != s {
		return 0, false
	}
	n, err := strconv.ParseUint(s, 16, 64)
	return n, err == nil
}

// rangeEnd is the end of the range of keys that start with prefix.
func rangeEnd(prefix string) string { return clientv3.GetPrefixRangeEnd(prefix) }
