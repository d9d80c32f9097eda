package boltstore

// Bucket and key names of the schema drawn in doc.go. They are bytes on
// disk: renaming one is a schema change and needs a migration.
var (
	// bucketKeyRoot is the root bucket; its name is the schema generation.
	bucketKeyRoot = []byte("v1")
	// keyVersion, in the root bucket, holds the schema version (uvarint).
	keyVersion = []byte("version")

	bucketKeyKeys         = []byte("keys")
	bucketKeyFingerprints = []byte("fingerprints")
	bucketKeyCKAIDs       = []byte("ckaids")
	bucketKeyOrgs         = []byte("orgs")
	bucketKeySignatures   = []byte("signatures")
	bucketKeyAudit        = []byte("audit")
	bucketKeyMeta         = []byte("meta")
	// bucketKeyCheckpoints holds signed audit checkpoints (migration 2).
	bucketKeyCheckpoints = []byte("checkpoints")
	// bucketKeyTree holds the transparency log's complete Merkle nodes
	// (migration 3): uint8(level) ‖ uint64be(index) → hash(32).
	bucketKeyTree = []byte("tree")
	// bucketKeySigLeaves indexes the records of signatures (migration 3):
	// digest(32) ‖ SHA-256(signature) → uint64be(seq).
	bucketKeySigLeaves = []byte("sigleaves")

	// keyAuditHead, in the meta bucket, is uint64be(seq) ‖ hash of the last
	// audit record.
	keyAuditHead = []byte("audit_head")
	// keyAuditKey, in the meta bucket, is the JSON store.Key of the audit
	// checkpoint key (migration 2 reserves it; SetAuditKey writes it).
	keyAuditKey = []byte("audit_key")
	// keyTreeHead, in the meta bucket, is the compact range of the whole
	// tree (store.TreeHead.Hashes, 32 bytes each, left to right); its size
	// is the audit head's seq, written in the same transaction (migration 3).
	keyTreeHead = []byte("tree_head")
	// keyLogKey, in the meta bucket, is the JSON store.Key of the
	// transparency log's Ed25519 note key (never in keys/).
	keyLogKey = []byte("log_key")
)
