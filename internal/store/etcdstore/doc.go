// Package etcdstore is the etcd backend of store.Store: signerd's state in
// an etcd cluster that several signerd replicas share. It is the only
// package that talks to etcd (through go.etcd.io/etcd/client/v3; the etcd
// server is imported by tests only).
//
// # Key layout
//
// Every key lives under one prefix (Options.Prefix, default "/signerd/"),
// so several deployments can share a cluster. Values are JSON of the store
// types, as boltstore writes them; integers in keys are fixed-width
// lowercase hex so that etcd's byte order is the numeric order:
//
//	PREFIX meta/schema                  "2": the layout version (Open migrates "1", refuses a newer one)
//	PREFIX meta/import                  present while `signerd store migrate` copies into
//	                                    the prefix; Open refuses to serve such a store
//	PREFIX keys/NAME                    JSON store.Key (all versions)
//	PREFIX fingerprints/FP              JSON {"key":NAME,"version":N}: FindKeyVersion's
//	                                    index, one entry per key version
//	PREFIX ckaids/HEX(CKA_ID)           NAME: enforces CKA_ID uniqueness
//	PREFIX orgs/ID                      JSON store.Org (trusted keys, grants, policy)
//	PREFIX signatures/HEX(DIGEST)/SEQ   JSON store.SignatureRecord; SEQ (16 hex digits) is
//	                                    the seq of the audit record written with it, so a
//	                                    prefix scan returns a digest's records oldest first
//	PREFIX audit/records/SEQ            JSON store.AuditRecord (append-only, hash-chained)
//	PREFIX audit/head                   JSON {"seq":N,"hash":…,"tree":[…]}: the last audit
//	                                    record and the Merkle tree's compact range (tree.go)
//	PREFIX audit/tree/SEQ               the tree nodes completed by the transaction whose
//	                                    last record is SEQ: (uint8 level ‖ uint64be index ‖
//	                                    hash) per node (layout 2)
//	PREFIX audit/key                    JSON store.Key: the audit checkpoint key
//	PREFIX audit/logkey                 JSON store.Key: the transparency log's note key
//	PREFIX audit/checkpoints/SEQ        JSON store.Checkpoint
//
// # Transactions: one chain, advanced by compare-and-swap
//
// Every state change is one etcd transaction holding the change, its audit
// record and the new audit head, guarded by compares: the head's mod
// revision is the one the record was chained to (so two replicas can never
// both append seq N), the record's key does not exist yet, and whatever the
// change read is unchanged (CreateKey: the name, every fingerprint and
// CKA_ID index entry absent; an org change: the org's mod revision). A
// failed compare re-reads and tries again; a method returns only when the
// transaction committed, that is after the etcd quorum has it. No
// in-process lock decides uniqueness: two replicas creating the same key
// name race in etcd and exactly one transaction succeeds.
//
// Within one process a single committer goroutine serves every write.
// PutSignature and AppendAudit calls that arrive while a transaction is in
// flight go into the next one together (group commit, as boltstore's
// DB.Batch), so a replica contends for the head once per batch, not once
// per signature.
//
// A transaction whose outcome is unknown (the etcd member answering it
// died, a timeout) is resolved, not guessed: the committer looks for the
// first audit record it wrote, at its seq and with its hash, whenever it
// next reads the head. Every transaction is guarded by the head it was
// chained to, so at most one of the first attempt and its retries can
// commit.
//
// # Watches
//
// WatchChanges (store.ChangeNotifier) watches keys/, orgs/ and audit/key;
// the service drops its caches on each event, so a revocation or a trust
// removal made through one replica is enforced by every other one as soon
// as the event arrives (milliseconds on a healthy cluster).
package etcdstore
