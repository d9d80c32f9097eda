// Package boltstore is the bbolt backend of store.Store: signerd's whole
// state in one local file. It is the only package that imports bbolt.
//
// # Schema
//
// All buckets live under one root bucket named for the schema generation;
// the schema version inside it says which migrations have run. Keys and
// values, as bytes:
//
//	v1/                                  root bucket
//	├── version        uvarint           schema version (see migrations.go)
//	├── keys/          name → JSON store.Key (all versions)
//	├── fingerprints/  fingerprint → uint32be(version) ‖ key name
//	│                                    index for FindKeyVersion; one entry per key version
//	├── ckaids/        CKA_ID → key name index enforcing CKA_ID uniqueness
//	├── orgs/          org ID → JSON store.Org (trusted keys, grants, policy)
//	├── signatures/    digest(32) ‖ uint64be(2^63 | seq) → JSON store.SignatureRecord
//	│                                    records of schema 4, frozen at schema 5: seq is
//	│                                    the record's audit record, so a prefix scan
//	│                                    returns a digest's records oldest first and each
//	│                                    names its log leaf (seq-1); records from before
//	│                                    schema 4 are keyed digest ‖ uint64be(n), n < 2^63
//	│                                    the bucket's NextSequence, and sort first
//	├── sigrecords/    uint64be(seq) → JSON store.SignatureRecord (schema 5): every
//	│                                    later record, appended under its audit record
//	├── sigindex/      digest(32) ‖ uint64be(2^63 | seq) → empty (schema 5): the digest
//	│                                    index of sigrecords/ up to meta/sigindex_mark;
//	│                                    later records are indexed in memory until a
//	│                                    merge (sigindex.go). Readers merge signatures/
//	│                                    and the index by key: same key form, same order
//	├── audit/         uint64be(seq) → JSON store.AuditRecord (append-only, hash-chained)
//	├── checkpoints/   uint64be(seq) → JSON store.Checkpoint (migration 2): the
//	│                                    audit key's signature over (seq, hash of
//	│                                    record seq), and (since migration 3) the
//	│                                    log key's signed note; append-only, ascending seq
//	├── tree/          every complete node of the audit log's Merkle tree → hash(32)
//	│                                    (migration 3), keyed uint8(level) ‖ uint64be(index)
//	│                                    if complete within the first meta/tree_order_from
//	│                                    leaves, else 0x80 ‖ uint64be(its position in
//	│                                    creation order) (schema 6: one commit's nodes are
//	│                                    one run at the end of the bucket)
//	├── sigleaves/     digest(32) ‖ SHA-256(signature) → uint64be(seq) (migration 3):
//	│                                    the audit record of a signature, for SignatureLeaf;
//	│                                    frozen at schema 4 (records logged under schema 3)
//	└── meta/
//	    ├── audit_head uint64be(seq) ‖ hash(32): the last audit record, so a
//	    │                                truncated tail is detectable
//	    ├── tree_head  hash(32)…: the tree's compact range, one hash per set bit of
//	    │                                the head's seq (migration 3)
//	    ├── audit_key  JSON store.Key: the audit checkpoint key (never in keys/)
//	    ├── log_key    JSON store.Key: the transparency log's note key (never in keys/)
//	    ├── sigindex_mark uint64be(seq): every sigrecords/ record at or below it is
//	    │                                in sigindex/ (schema 5)
//	    └── tree_order_from uint64be(size): the tree's size at migration 6; absent
//	                                     before it (every node keyed by level)
//
// Big-endian integers make bbolt's byte order the numeric order. Bucket and
// key names are in buckets.go; changing any of them, or the shape of a value,
// requires a new migration (migrations.go) and its test.
//
// # Transactions and durability
//
// Every state change and its audit record are written in one read-write
// transaction; the audit record's seq and hashes are computed from that
// transaction's view of the chain head, never from memory, so concurrent
// writers cannot fork the chain. Commits fsync (NoSync is never set).
// PutSignature and AppendAudit, the hot paths, go through the store's group
// commit (groupcommit.go), which puts every caller that arrived during the
// previous commit into the next transaction and fsync, and returns to each
// caller only after that commit. Nothing slow (no HSM call,
// no network) runs inside a write transaction: bbolt has a single writer.
package boltstore
