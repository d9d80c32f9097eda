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
	// (migration 3) → hash(32), keyed as nodeLayout says: uint8(level) ‖
	// uint64be(index) up to schema 5, 0x80 ‖ uint64be(position in creation
	// order) for the nodes written from schema 6 on.
	bucketKeyTree = []byte("tree")
	// bucketKeySigLeaves indexes the records of signatures (migration 3):
	// digest(32) ‖ SHA-256(signature) → uint64be(seq). Frozen by migration
	// 4: it holds the records logged under schema 3 only; later records
	// are found by their key in signatures/ (signatureKey).
	bucketKeySigLeaves = []byte("sigleaves")
	// bucketKeySigRecords holds the signature records of schema 5 on:
	// uint64be(seq of the record's audit record) → JSON store.SignatureRecord,
	// appended in audit order.
	bucketKeySigRecords = []byte("sigrecords")
	// bucketKeySigIndex is the persisted digest index of sigrecords/
	// (sigindex.go): signatureKey(digest, seq) → empty, for every record up
	// to the watermark keySigIndexMark.
	bucketKeySigIndex = []byte("sigindex")

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
	// keySigIndexMark, in the meta bucket, is uint64be(seq): every record
	// in sigrecords/ at or below it has its sigindex/ entry (schema 5).
	keySigIndexMark = []byte("sigindex_mark")
	// keyJournalPos, in the meta bucket, is uint64be(offset): where in the
	// journal the frame after the last one applied starts (schema 7).
	keyJournalPos = []byte("journal_pos")
	// keyJournalOpen, in the meta bucket, is uint64be(size): a read-write
	// open set it (the journal's size then) and no clean close has cleared
	// it since. Set, the journal may hold acknowledged records that are
	// nowhere else, so it must be there, whole (journal.go, openJournal).
	keyJournalOpen = []byte("journal_open")
	// keyJournalLoss, in the meta bucket, is what --accept-journal-loss
	// accepted, until the daemon has recorded it in the audit log
	// (JournalLossRecorded): a start that fails before that leaves it,
	// and the next start records it.
	keyJournalLoss = []byte("journal_loss")
	// keyTreeOrderFrom, in the meta bucket, is uint64be(size): the tree's
	// nodes complete within its first size leaves are keyed by level and
	// index, every later one by its position in creation order (schema 6,
	// nodeLayout). Absent (schemas 3–5), every node is keyed by level.
	keyTreeOrderFrom = []byte("tree_order_from")
)

// loggedKeyFlag marks, in a signatures/ key, a uint64 that is the seq of
// the record's audit record (schema 4) rather than a per-bucket counter.
const loggedKeyFlag = uint64(1) << 63

// appendFill is the FillPercent of buckets whose keys are only appended
// (audit/, and tree/ in creation order): a page that splits is left nearly
// full, as nothing will be inserted into it later.
const appendFill = 0.95
