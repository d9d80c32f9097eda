package store

import "context"

// Optional interfaces a backend may implement beside Store. Callers find
// them with a type assertion, so Store itself stays the narrow contract
// the service layer needs, whichever backend it runs on.

// ChangeNotifier is implemented by backends that other processes write to
// (etcd: several signerd replicas share one store). The service caches
// keys, trust and policy and invalidates them on every change made through
// its own process; a ChangeNotifier tells it about changes made by others.
type ChangeNotifier interface {
	// WatchChanges returns a channel that receives a value after any
	// change to keys, orgs (trust, grants, policy) or the audit key,
	// whoever made it, and whenever the backend may have missed changes
	// (a watch that had to be re-established). Notifications coalesce: a
	// receiver that is slow gets at least one value after the last
	// change, not one per change. Signature and audit records are not
	// reported (nothing caches them). The channel is closed when ctx ends
	// or the store is closed.
	WatchChanges(ctx context.Context) <-chan struct{}
}

// Exporter is implemented by backends whose every signature record can be
// enumerated (store migrate copies them; Store itself only reads them by
// digest).
type Exporter interface {
	// ForEachSignature calls fn with every signature record, grouped by
	// digest in ascending byte order and, within a digest, oldest first
	// (the order SignaturesByDigest returns). It stops at fn's first error
	// and returns it.
	ForEachSignature(ctx context.Context, fn func(SignatureRecord) error) error
}

// Importer is implemented by backends that can receive a verbatim copy of
// another store (store migrate): records keep their sequence numbers and
// hashes, so the audit chain and every checkpoint still verify, and no
// audit record is added for the copy itself.
//
// An import is BeginImport, the Import calls in the order below, then
// FinishImport. A store that was not finished refuses to be opened for
// service, so a half-copied store is never used by mistake.
type Importer interface {
	// BeginImport marks the store as being imported into. It fails with
	// ErrFailedPrecondition unless the store is empty.
	BeginImport(ctx context.Context) error
	// ImportKeys records keys with their versions as given, and their
	// fingerprint and CKA_ID indexes (ErrAlreadyExists on a clash).
	ImportKeys(ctx context.Context, keys []Key) error
	// ImportOrgs records orgs as given.
	ImportOrgs(ctx context.Context, orgs []Org) error
	// ImportAuditKey records the audit checkpoint key.
	ImportAuditKey(ctx context.Context, k Key) error
	// ImportLogKey records the transparency log's note key, so the
	// copied checkpoint notes still verify with the same verifier key.
	ImportLogKey(ctx context.Context, k Key) error
	// ImportAudit appends records verbatim; the first MUST have the seq
	// after the current head (1 for an empty log). The head moves to the
	// last one.
	ImportAudit(ctx context.Context, recs []AuditRecord) error
	// ImportSignatures records signature records in the order given (that
	// of Exporter.ForEachSignature), after the audit log is imported.
	ImportSignatures(ctx context.Context, recs []SignatureRecord) error
	// ImportCheckpoints records checkpoints verbatim, in ascending seq
	// order, after the audit log is imported.
	ImportCheckpoints(ctx context.Context, cps []Checkpoint) error
	// FinishImport clears the mark BeginImport set.
	FinishImport(ctx context.Context) error
}

// HealthChecker is implemented by backends that can become unavailable
// while the daemon runs (etcd: a cluster that loses its quorum). The
// daemon polls it and reports NOT_SERVING while it fails, so load
// balancers and loaders move to a replica that can record signatures
// instead of waiting out the write timeout on this one.
type HealthChecker interface {
	// CheckHealth returns nil when the store can serve reads and writes
	// now, and an error saying why not otherwise. It returns when ctx
	// ends at the latest.
	CheckHealth(ctx context.Context) error
}

// HSMToken identifies the PKCS#11 token that holds a deployment's keys, as
// the token reports itself (C_GetTokenInfo).
type HSMToken struct {
	Label        string `json:"label"`
	Serial       string `json:"serial"`
	Model        string `json:"model"`
	Manufacturer string `json:"manufacturer"`
}

// TokenPinner is implemented by backends that record which token the
// deployment's keys were made in, so that a later start against another
// token carrying the same label is refused rather than served.
type TokenPinner interface {
	// PinToken records t, with audit event ev in the same transaction, if
	// no token is recorded yet, and returns the recorded token (t itself
	// the first time; then created is true). Replicas racing on an empty
	// store record exactly one.
	PinToken(ctx context.Context, t HSMToken, ev AuditEvent) (recorded HSMToken, created bool, err error)
}
