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

	// keyAuditHead, in the meta bucket, is uint64be(seq) ‖ hash of the last
	// audit record.
	keyAuditHead = []byte("audit_head")
	// keyAuditKey, in the meta bucket, is the JSON store.Key of the audit
	// checkpoint key (migration 2 reserves it; SetAuditKey writes it).
	keyAuditKey = []byte("audit_key")
)
