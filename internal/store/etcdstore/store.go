package etcdstore

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/signerd/signerd/internal/errdefs"
	"github.com/signerd/signerd/internal/store"
)

// Defaults for Options.
const (
	// DefaultDialTimeout bounds Open's first contact with the cluster.
	DefaultDialTimeout = 5 * time.Second
	// DefaultWriteTimeout bounds one write, retries included: how long a
	// signature waits for a cluster that has lost its quorum before the
	// call fails (the signature is then discarded, never released).
	DefaultWriteTimeout = 15 * time.Second
)

// Options configure Open.
type Options struct {
	// Endpoints are the etcd client URLs (http://HOST:PORT or
	// https://HOST:PORT). Ignored when Client is set.
	Endpoints []string
	// TLS configures client TLS to etcd; nil speaks plaintext. The daemon
	// allows plaintext to loopback endpoints only.
	TLS *tls.Config
	// Prefix is where every key lives; "" means DefaultPrefix.
	Prefix string
	// Logger receives the store's and the etcd client's warnings; nil
	// discards them.
	Logger *slog.Logger
	// DialTimeout bounds Open's first request; 0 means DefaultDialTimeout.
	DialTimeout time.Duration
	// WriteTimeout bounds each write, retries included; 0 means
	// DefaultWriteTimeout.
	WriteTimeout time.Duration
	// Client, if set, is used instead of dialling Endpoints; Close leaves
	// it open (tests share one client between stores).
	Client *clientv3.Client
	// ForImport opens a store to copy another one into (store.Importer):
	// a store whose import did not finish is then accepted.
	ForImport bool

	// noHeadWatch leaves the committer without the head watch (turns.go),
	// so that a test can make it chain a batch to a stale head.
	noHeadWatch bool
}

// Store is store.Store on an etcd cluster. It is safe for concurrent use,
// and several Stores (in several processes) may share one prefix.
type Store struct {
	cli       *clientv3.Client
	ownClient bool
	l         layout
	log       *slog.Logger
	writeTO   time.Duration
	commits   atomic.Uint64
	cont      contention
	treeOps   treeCounter

	// The committer (commit.go).
	mu      sync.Mutex
	queue   []*write
	closed  bool
	kick    chan struct{}
	stop    chan struct{}
	stopped chan struct{}
	head    head // owned by the committer goroutine
	// guards: what the committer knows of the signing keys (signers.go);
	// owned by the committer goroutine.
	guards map[string]signerGuard
	turn   turn // owned by the committer goroutine (turns.go)

	// The head as the watch last saw it (turns.go); headWatched is closed
	// when the watch has stopped.
	seen        headSeen
	headWatched chan struct{}

	// importSeq numbers imported signature records (import.go);
	// importSigs maps the signatures imported audit records carry to
	// their seqs.
	importSeq  atomic.Uint64
	importMu   sync.Mutex
	importSigs map[[2 * sha256.Size]byte]*importedSig

	closeOnce sync.Once
	closeErr  error
}

var (
	_ store.Store          = (*Store)(nil)
	_ store.ChangeNotifier = (*Store)(nil)
	_ store.Importer       = (*Store)(nil)
	_ store.Exporter       = (*Store)(nil)
)

// Open connects to the cluster, checks (or, on a new prefix, writes) the
// layout version and starts the committer. It fails with
// errdefs.ErrUnavailable if the cluster does not answer within the dial
// timeout, and with errdefs.ErrFailedPrecondition if the prefix holds a
// newer layout, something that is not a signerd store, or an unfinished
// import.
func Open(ctx context.Context, opts Options) (*Store, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.DialTimeout <= 0 {
		opts.DialTimeout = DefaultDialTimeout
	}
	if opts.WriteTimeout <= 0 {
		opts.WriteTimeout = DefaultWriteTimeout
	}
	l, err := newLayout(opts.Prefix)
	if err != nil {
		return nil, fmt.Errorf("%v: %w", err, errdefs.ErrInvalidArgument)
	}
	log := opts.Logger.With("etcd_prefix", l.prefix)
	cli, own := opts.Client, false
	if cli == nil {
		if len(opts.Endpoints) == 0 {
			return nil, fmt.Errorf("no etcd endpoints: %w", errdefs.ErrInvalidArgument)
		}
		cli, err = clientv3.New(clientv3.Config{
			Endpoints:            opts.Endpoints,
			TLS:                  opts.TLS,
			DialTimeout:          opts.DialTimeout,
			DialKeepAliveTime:    10 * time.Second,
			DialKeepAliveTimeout: 5 * time.Second,
			Logger:               zapToSlog(log),
		})
		if err != nil {
			return nil, fmt.Errorf("etcd client for %s: %w", strings.Join(opts.Endpoints, ","), errors.Join(errdefs.ErrInvalidArgument, err))
		}
		own = true
	}
	s := &Store{
		cli: cli, ownClient: own, l: l, log: log, writeTO: opts.WriteTimeout,
		kick: make(chan struct{}, 1), stop: make(chan struct{}), stopped: make(chan struct{}), guards: map[string]signerGuard{},
		headWatched: make(chan struct{}),
	}
	s.seen.signal = make(chan struct{}, 1)
	octx, cancel := context.WithTimeout(ctx, opts.DialTimeout)
	err = s.checkSchema(octx, opts.ForImport)
	cancel()
	if errors.Is(err, errLayout1) {
		// Building the tree reads the whole log: bounded by ctx, not by
		// the dial timeout.
		err = s.migrateTree(ctx)
	}
	if err != nil {
		if own {
			_ = cli.Close()
		}
		if ctx.Err() == nil && errors.Is(err, context.DeadlineExceeded) {
			err = fmt.Errorf("etcd %s did not answer within %s: %w", strings.Join(cli.Endpoints(), ","), opts.DialTimeout, errdefs.ErrUnavailable)
		}
		return nil, err
	}
	go s.run()
	if opts.noHeadWatch {
		close(s.headWatched)
	} else {
		go s.watchHead()
	}
	log.Debug("opened etcd store", "endpoints", strings.Join(cli.Endpoints(), ","), "schema", schemaVersion)
	return s, nil
}

// errLayout1 is checkSchema's report of a layout "1" prefix, which Open
// migrates (migrate.go).
var errLayout1 = errors.New("etcd layout 1")

// checkSchema reads the layout version and the import mark; on an empty
// prefix it writes the version (a transaction that only creates it, so two
// replicas starting together agree).
func (s *Store) checkSchema(ctx context.Context, forImport bool) error {
	kvs, err := s.getMany(ctx, s.l.schema(), s.l.importMark())
	if err != nil {
		return err
	}
	if kvs[1] != nil && !forImport {
		return fmt.Errorf("etcd prefix %s holds an import that did not finish (signerd store migrate was interrupted): delete the prefix (etcdctl del --prefix %s) and migrate again: %w",
			s.l.prefix, s.l.prefix, errdefs.ErrFailedPrecondition)
	}
	if kvs[0] != nil {
		if string(kvs[0].Value) == "1" {
			return errLayout1
		}
		if v := string(kvs[0].Value); v != schemaVersion {
			return fmt.Errorf("etcd prefix %s has layout version %q; this signerd knows %q: %w", s.l.prefix, v, schemaVersion, errdefs.ErrFailedPrecondition)
		}
		return nil
	}
	n, err := s.cli.Get(ctx, s.l.prefix, clientv3.WithPrefix(), clientv3.WithCountOnly())
	if err != nil {
		return mapErr("read", err)
	}
	if n.Count > 0 {
		return fmt.Errorf("etcd prefix %s holds %d keys but no signerd layout version: it is not a signerd store (choose another prefix): %w",
			s.l.prefix, n.Count, errdefs.ErrFailedPrecondition)
	}
	resp, err := s.cli.Txn(ctx).
		If(clientv3.Compare(clientv3.CreateRevision(s.l.schema()), "=", 0)).
		Then(clientv3.OpPut(s.l.schema(), schemaVersion)).
		Else(clientv3.OpGet(s.l.schema())).
		Commit()
	if err != nil {
		return mapErr("write layout version", err)
	}
	if !resp.Succeeded {
		if kvs := resp.Responses[0].GetResponseRange().GetKvs(); len(kvs) == 0 || string(kvs[0].Value) != schemaVersion {
			return fmt.Errorf("etcd prefix %s: another process wrote a different layout version: %w", s.l.prefix, errdefs.ErrFailedPrecondition)
		}
	}
	return nil
}

// Prefix returns the prefix every key of the store lives under.
func (s *Store) Prefix() string { return s.l.prefix }

// Commits returns the number of write transactions this process committed
// (each is one quorum commit). Signatures per commit show group commit at
// work.
func (s *Store) Commits() uint64 { return s.commits.Load() }

// Close stops the committer (writes still queued fail with
// ErrUnavailable; the one in flight finishes first) and closes the etcd
// client unless it was given in Options.Client.
func (s *Store) Close() error {
	s.closeOnce.Do(func() {
		s.mu.Lock()
		s.closed = true
		s.mu.Unlock()
		close(s.stop)
		<-s.stopped
		<-s.headWatched
		if s.ownClient {
			s.closeErr = s.cli.Close()
		}
	})
	return s.closeErr
}

// keyValue is an etcd key and value as read.
type keyValue = mvccpb.KeyValue

// getMany reads keys at one revision, in one round trip per maxTxnReads
// of them; an absent key is nil. One read per key would make a write whose
// prepare reads many (a trust removal reading every child org) take long
// enough for another replica's audit append to fail it every time.
func (s *Store) getMany(ctx context.Context, keys ...string) ([]*mvccpb.KeyValue, error) {
	kvs, _, err := s.getManyAt(ctx, keys...)
	return kvs, err
}

// getManyAt is getMany that also returns the revision read at (0 for no
// keys). A revision compacted between two round trips starts it over.
func (s *Store) getManyAt(ctx context.Context, keys ...string) ([]*mvccpb.KeyValue, int64, error) {
	for try := 0; ; try++ {
		kvs, rev, err := s.getManyOnce(ctx, keys)
		if errors.Is(err, rpctypes.ErrCompacted) && try < 3 {
			continue
		}
		if err != nil {
			return nil, 0, mapErr("read", err)
		}
		return kvs, rev, nil
	}
}

func (s *Store) getManyOnce(ctx context.Context, keys []string) ([]*mvccpb.KeyValue, int64, error) {
	out := make([]*mvccpb.KeyValue, 0, len(keys))
	var rev int64
	for len(keys) > 0 {
		chunk := keys[:min(len(keys), maxTxnReads)]
		keys = keys[len(chunk):]
		ops := make([]clientv3.Op, len(chunk))
		for i, k := range chunk {
			if rev != 0 {
				ops[i] = clientv3.OpGet(k, clientv3.WithRev(rev))
			} else {
				ops[i] = clientv3.OpGet(k)
			}
		}
		resp, err := s.cli.Txn(ctx).Then(ops...).Commit()
		if err != nil {
			return nil, 0, err
		}
		if rev == 0 {
			// The later chunks read as of the first.
			rev = resp.Header.GetRevision()
		}
		for _, r := range resp.Responses {
			var kv *mvccpb.KeyValue
			if kvs := r.GetResponseRange().GetKvs(); len(kvs) > 0 {
				kv = kvs[0]
			}
			out = append(out, kv)
		}
	}
	return out, rev, nil
}

// maxTxnReads is how many reads getMany puts in one transaction, within
// etcd's default limit of 128 operations.
const maxTxnReads = 100

// get reads one key; nil if absent.
func (s *Store) get(ctx context.Context, key string) (*mvccpb.KeyValue, error) {
	resp, err := s.cli.Get(ctx, key)
	if err != nil {
		return nil, mapErr("read", err)
	}
	if len(resp.Kvs) == 0 {
		return nil, nil
	}
	return resp.Kvs[0], nil
}

// decode decodes the JSON value of kv.
func decode[T any](kv *mvccpb.KeyValue) (T, error) {
	return decodeValue[T](string(kv.Key), kv.Value)
}

// decodeValue decodes raw, the value of what.
func decodeValue[T any](what string, raw []byte) (v T, err error) {
	if err := json.Unmarshal(raw, &v); err != nil {
		return v, fmt.Errorf("decode %q: %w", what, errors.Join(errdefs.ErrInternal, err))
	}
	return v, nil
}

// encode is the JSON of v as an etcd value.
func encode(v any) (string, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return "", fmt.Errorf("encode: %w", errors.Join(errdefs.ErrInternal, err))
	}
	return string(b), nil
}

// mapErr gives an etcd client error an errdefs kind. Context errors pass
// through (with their kind for errors.Is).
func mapErr(op string, err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("etcd %s: %w", op, errors.Join(errdefs.ErrUnavailable, err))
	}
	code := codes.Unknown
	var ee rpctypes.EtcdError
	if errors.As(err, &ee) {
		code = ee.Code()
	} else if st, ok := status.FromError(err); ok {
		code = st.Code()
	}
	var kind error
	switch {
	case errors.Is(err, rpctypes.ErrNoSpace):
		kind = errdefs.ErrResourceExhausted
	case code == codes.PermissionDenied:
		kind = errdefs.ErrPermissionDenied
	case code == codes.Unauthenticated:
		kind = errdefs.ErrUnauthenticated
	case code == codes.Canceled:
		kind = errors.Join(errdefs.ErrUnavailable, context.Canceled)
	case code == codes.DeadlineExceeded:
		kind = errors.Join(errdefs.ErrUnavailable, context.DeadlineExceeded)
	case code == codes.Unavailable, code == codes.ResourceExhausted, code == codes.Aborted, code == codes.Unknown:
		kind = errdefs.ErrUnavailable
	default:
		kind = errdefs.ErrInternal
	}
	return fmt.Errorf("etcd %s: %w", op, errors.Join(kind, err))
}
