package daemon

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"reflect"

	"github.com/spf13/cobra"

	"github.com/signerd/signerd/internal/auditlog"
	"github.com/signerd/signerd/internal/errdefs"
	"github.com/signerd/signerd/internal/service"
	"github.com/signerd/signerd/internal/store"
	"github.com/signerd/signerd/internal/store/boltstore"
)

func newStoreCommand(stdout io.Writer, getenv func(string) string) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "store",
		Short: "Operate on signerd's state store",
	}
	cmd.AddCommand(newMigrateCommand(stdout, getenv))
	return cmd
}

func newMigrateCommand(stdout io.Writer, getenv func(string) string) *cobra.Command {
	var opts struct{ from, to string }
	cmd := &cobra.Command{
		Use:   "migrate --from bbolt:FILE --to etcd:URL,URL,… [--etcd-ca FILE --etcd-cert FILE --etcd-key FILE] [--etcd-prefix P]",
		Short: "Copy a bbolt store into an etcd cluster, audit chain included, and verify the copy",
		Long: `Copy everything a signerd bbolt database holds — keys (with their CKA_IDs and
fingerprints), orgs (trust, grants, policy), signature records, the audit log
(every record with its seq and hashes), the audit checkpoints and the audit key
— into an empty etcd prefix, then verify the copy: the audit chain and every
checkpoint (signed by the audit key) on the etcd side, and equal contents on
both sides. No audit record is added: the copy is the same log.

Stop signerd first (the file is opened read-only, and a running signerd holds
its lock). The source must verify before anything is copied. The destination
prefix must be empty; until the copy verifies, it is marked as an unfinished
import and no signerd serves from it. If the copy fails, delete the prefix
(etcdctl del --prefix PREFIX) and run the migration again.

etcd TLS settings are the daemon's: --etcd-ca, --etcd-cert, --etcd-key,
--etcd-prefix, or SIGNERD_ETCD_* (plaintext only to loopback endpoints).`,
		Example: `  signerd store migrate --from bbolt:/var/lib/signerd/signerd.db \
      --to etcd:https://etcd-1:2379,https://etcd-2:2379,https://etcd-3:2379 \
      --etcd-ca /etc/signerd/etcd-ca.pem --etcd-cert /etc/signerd/etcd.crt --etcd-key /etc/signerd/etcd.key`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := Load(cmd.Flags(), getenv)
			if err != nil {
				return err
			}
			if opts.from == "" || opts.to == "" {
				return errors.New("store migrate needs --from bbolt:FILE and --to etcd:URL,…")
			}
			from, err := parseStore(opts.from, Config{})
			if err != nil {
				return fmt.Errorf("--from: %w", err)
			}
			if from.kind != "bbolt" {
				return fmt.Errorf("--from %s: the source must be a bbolt file", opts.from)
			}
			to, err := parseStore(opts.to, cfg)
			if err != nil {
				return fmt.Errorf("--to: %w", err)
			}
			if to.kind != "etcd" {
				return fmt.Errorf("--to %s: the destination must be an etcd cluster", opts.to)
			}
			ctx := cmd.Context()
			src, err := boltstore.Open(ctx, from.path, boltstore.Options{ReadOnly: true})
			if err != nil {
				return fmt.Errorf("open %s: %w", from, err)
			}
			defer src.Close()
			dst, err := openEtcd(ctx, to, cfg, nil, true)
			if err != nil {
				return fmt.Errorf("open %s: %w", to, err)
			}
			defer dst.Close()
			rep, err := migrateStore(ctx, src, dst)
			if err != nil {
				return err
			}
			_, err = fmt.Fprintf(stdout, "copied %s to %s\n%s", from, to, rep)
			return err
		},
	}
	registerFlags(cmd.Flags())
	cmd.Flags().StringVar(&opts.from, "from", "", "the source store: bbolt:FILE")
	cmd.Flags().StringVar(&opts.to, "to", "", "the destination store: etcd:URL,URL,… (an empty prefix)")
	return cmd
}

// migrateSource is what a migration reads.
type migrateSource interface {
	store.Store
	store.Exporter
}

// migrateDest is what a migration writes.
type migrateDest interface {
	store.Store
	store.Exporter
	store.Importer
}

// migrateReport is what a migration copied and verified.
type migrateReport struct {
	keys, orgs, signatures, checkpoints int
	auditKey                            bool
	headSeq                             uint64
	headHash                            []byte
	latest                              *store.Checkpoint
}

func (r migrateReport) String() string {
	s := fmt.Sprintf("%d keys, %d orgs, %d signature records, %d audit records (head %x), %d checkpoints",
		r.keys, r.orgs, r.signatures, r.headSeq, r.headHash, r.checkpoints)
	if r.auditKey {
		s += ", the audit key"
	}
	s += "\nverified: the audit chain is intact on the destination"
	if r.latest != nil {
		s += fmt.Sprintf(", every checkpoint verifies (newest: seq %d)", r.latest.Seq)
	}
	return s + ", and both stores hold the same records\n"
}

// migrateBatch is how many audit or signature records one import call
// receives.
const migrateBatch = 500

// migrateStore copies src into dst (an empty store) verbatim and verifies
// the copy; dst is marked as an unfinished import until it verifies.
func migrateStore(ctx context.Context, src migrateSource, dst migrateDest) (migrateReport, error) {
	var rep migrateReport
	pub, err := auditPublicKey(ctx, src)
	if err != nil {
		return rep, fmt.Errorf("source: %w", err)
	}
	if err := verifyLog(ctx, src, pub); err != nil {
		return rep, fmt.Errorf("the source audit log does not verify, so it is not copied (run signctl audit verify --db on it): %w", err)
	}
	if err := dst.BeginImport(ctx); err != nil {
		return rep, fmt.Errorf("destination: %w", err)
	}

	keys, err := src.ListKeys(ctx)
	if err != nil {
		return rep, err
	}
	if err := dst.ImportKeys(ctx, keys); err != nil {
		return rep, fmt.Errorf("copy keys: %w", err)
	}
	orgs, err := src.ListOrgs(ctx)
	if err != nil {
		return rep, err
	}
	if err := dst.ImportOrgs(ctx, orgs); err != nil {
		return rep, fmt.Errorf("copy orgs: %w", err)
	}
	if ak, err := src.AuditKey(ctx); err == nil {
		if err := dst.ImportAuditKey(ctx, ak); err != nil {
			return rep, fmt.Errorf("copy the audit key: %w", err)
		}
	} else if !errors.Is(err, errdefs.ErrNotFound) {
		return rep, err
	}
	if lk, err := src.LogKey(ctx); err == nil {
		if err := dst.ImportLogKey(ctx, lk); err != nil {
			return rep, fmt.Errorf("copy the log key: %w", err)
		}
	} else if !errors.Is(err, errdefs.ErrNotFound) {
		return rep, err
	}
	for since := uint64(0); ; {
		recs, err := src.ListAudit(ctx, since, migrateBatch)
		if err != nil {
			return rep, err
		}
		if len(recs) == 0 {
			break
		}
		if err := dst.ImportAudit(ctx, recs); err != nil {
			return rep, fmt.Errorf("copy audit records after %d: %w", since, err)
		}
		since = recs[len(recs)-1].Seq
	}
	var batch []store.SignatureRecord
	flush := func() error {
		err := dst.ImportSignatures(ctx, batch)
		batch = batch[:0]
		return err
	}
	err = src.ForEachSignature(ctx, func(r store.SignatureRecord) error {
		batch = append(batch, r)
		if len(batch) == migrateBatch {
			return flush()
		}
		return nil
	})
	if err == nil {
		err = flush()
	}
	if err != nil {
		return rep, fmt.Errorf("copy signature records: %w", err)
	}
	cps, err := src.ListCheckpoints(ctx)
	if err != nil {
		return rep, err
	}
	if err := dst.ImportCheckpoints(ctx, cps); err != nil {
		return rep, fmt.Errorf("copy checkpoints: %w", err)
	}

	// Verify the copy as a reader of the destination would, then compare.
	if err := verifyLog(ctx, dst, pub); err != nil {
		return rep, fmt.Errorf("the copy's audit log does not verify: %w", err)
	}
	if rep, err = compareStores(ctx, src, dst); err != nil {
		return rep, fmt.Errorf("the copy differs from the source: %w", err)
	}
	if pub != nil {
		r, _ := auditlog.Verify(ctx, dst, pub)
		rep.latest = r.Latest
	}
	if err := dst.FinishImport(ctx); err != nil {
		return rep, err
	}
	return rep, nil
}

// auditPublicKey returns the store's audit key, nil if it has none yet (a
// store signerd never started on).
func auditPublicKey(ctx context.Context, st store.Store) (*ecdsa.PublicKey, error) {
	k, err := st.AuditKey(ctx)
	if errors.Is(err, errdefs.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	ver, ok := k.Current()
	if !ok {
		return nil, fmt.Errorf("the audit key has no active version: %w", errdefs.ErrFailedPrecondition)
	}
	pub, err := service.ParsePublicKeyDER(ver.PublicKey)
	if err != nil {
		return nil, err
	}
	ec, ok := pub.(*ecdsa.PublicKey)
	if !ok {
		return nil, fmt.Errorf("the audit key is %T, not ECDSA: %w", pub, errdefs.ErrFailedPrecondition)
	}
	return ec, nil
}

// verifyLog checks the chain, and the checkpoints when there is an audit
// key.
func verifyLog(ctx context.Context, st store.Store, pub *ecdsa.PublicKey) error {
	if pub == nil {
		if cps, err := st.ListCheckpoints(ctx); err != nil || len(cps) > 0 {
			return errors.Join(err, fmt.Errorf("checkpoints without an audit key: %w", errdefs.ErrFailedPrecondition))
		}
		return st.VerifyAudit(ctx)
	}
	_, err := auditlog.Verify(ctx, st, pub)
	return err
}

// compareStores checks that a and b hold the same keys, orgs, audit key,
// audit records, checkpoints and signature records, in the same order.
func compareStores(ctx context.Context, a, b migrateSource) (migrateReport, error) {
	var rep migrateReport
	same := func(what string, get func(store.Store) (any, error)) error {
		x, err := get(a)
		if err != nil {
			return err
		}
		y, err := get(b)
		if err != nil {
			return err
		}
		if !reflect.DeepEqual(x, y) {
			return fmt.Errorf("%s differ: %w", what, errdefs.ErrInternal)
		}
		return nil
	}
	var err error
	err = errors.Join(err, same("keys", func(s store.Store) (any, error) {
		k, err := s.ListKeys(ctx)
		rep.keys = len(k)
		return k, err
	}))
	err = errors.Join(err, same("orgs", func(s store.Store) (any, error) {
		o, err := s.ListOrgs(ctx)
		rep.orgs = len(o)
		return o, err
	}))
	err = errors.Join(err, same("audit keys", func(s store.Store) (any, error) {
		k, err := s.AuditKey(ctx)
		if errors.Is(err, errdefs.ErrNotFound) {
			return nil, nil
		}
		rep.auditKey = err == nil
		return k, err
	}))
	err = errors.Join(err, same("log keys", func(s store.Store) (any, error) {
		k, err := s.LogKey(ctx)
		if errors.Is(err, errdefs.ErrNotFound) {
			return nil, nil
		}
		return k, err
	}))
	err = errors.Join(err, same("log roots", func(s store.Store) (any, error) {
		n, err := s.LogSize(ctx)
		if err != nil || n == 0 {
			return n, err
		}
		return s.LogRoot(ctx, n)
	}))
	err = errors.Join(err, same("audit heads", func(s store.Store) (any, error) {
		seq, hash, err := s.AuditHead(ctx)
		rep.headSeq, rep.headHash = seq, hash
		return []any{seq, hash}, err
	}))
	err = errors.Join(err, same("checkpoints", func(s store.Store) (any, error) {
		c, err := s.ListCheckpoints(ctx)
		rep.checkpoints = len(c)
		return c, err
	}))
	if err != nil {
		return rep, err
	}
	// The audit log and the signatures can be large: compare digests of
	// their JSON, record by record in order, and counts.
	for _, part := range []struct {
		what string
		sum  func(store.Store) ([]byte, int, error)
	}{
		{"audit records", func(s store.Store) ([]byte, int, error) {
			h, n := sha256.New(), 0
			for since := uint64(0); ; {
				recs, err := s.ListAudit(ctx, since, migrateBatch)
				if err != nil || len(recs) == 0 {
					return h.Sum(nil), n, err
				}
				for _, r := range recs {
					if err := json.NewEncoder(h).Encode(r); err != nil {
						return nil, 0, err
					}
				}
				n += len(recs)
				since = recs[len(recs)-1].Seq
			}
		}},
		{"signature records", func(s store.Store) ([]byte, int, error) {
			h, n := sha256.New(), 0
			err := s.(store.Exporter).ForEachSignature(ctx, func(r store.SignatureRecord) error {
				n++
				return json.NewEncoder(h).Encode(r)
			})
			rep.signatures = n
			return h.Sum(nil), n, err
		}},
	} {
		sa, na, err := part.sum(a)
		if err != nil {
			return rep, err
		}
		sb, nb, err := part.sum(b)
		if err != nil {
			return rep, err
		}
		if na != nb || !bytes.Equal(sa, sb) {
			return rep, fmt.Errorf("%s differ (%d and %d): %w", part.what, na, nb, errdefs.ErrInternal)
		}
	}
	return rep, nil
}
