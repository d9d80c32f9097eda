package cli

// Offline audit verification reads the database file itself: like offline
// package verification (verify --trust-key), it must work with no daemon,
// on a copy of the file taken from a host that may be compromised. So this
// file, alone in signctl, imports the store backend. It opens the file with
// boltstore.Options{ReadOnly: true}: a shared lock, O_RDONLY, no
// migration, every write refused. The chain and checkpoint checks are
// internal/auditlog's, the same code the daemon runs for the online check.

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	signerv1 "github.com/signerd/signerd/gen/signer/v1"
	"github.com/signerd/signerd/internal/auditlog"
	"github.com/signerd/signerd/internal/errdefs"
	"github.com/signerd/signerd/internal/store"
	"github.com/signerd/signerd/internal/store/boltstore"
)

func newAuditCommand(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "audit",
		Short: "List and verify the tamper-evident audit log",
		Long: `signerd appends every signature, failed verification, denial, key and trust
change to an audit log in its database. Each record carries the SHA-256 of the
previous one, and the daemon periodically and at shutdown signs a checkpoint
(sequence number and head hash) with an audit key held in the HSM.

'signctl audit verify' checks the whole chain and every checkpoint and names the
first record that was edited, inserted, deleted or reordered. It runs online
(through the daemon) or offline on a copy of the database and the audit public
key ('signctl audit public-key'; keep a copy away from the signerd host).`,
	}
	cmd.AddCommand(newAuditListCommand(g), newAuditVerifyCommand(g), newAuditPublicKeyCommand(g))
	return cmd
}

// auditRecordJSON is the -o json shape of one record.
type auditRecordJSON struct {
	Seq       uint64 `json:"seq"`
	Time      string `json:"time"`
	Caller    string `json:"caller"`
	Operation string `json:"operation"`
	Key       string `json:"key,omitempty"`
	Org       string `json:"org,omitempty"`
	Digest    string `json:"digest,omitempty"`
	Outcome   string `json:"outcome"`
	Detail    string `json:"detail,omitempty"`
	PrevHash  string `json:"prev_hash"`
	Hash      string `json:"hash"`
}

func newAuditListCommand(g *globals) *cobra.Command {
	var opts struct {
		since uint64
		limit int
	}
	cmd := &cobra.Command{
		Use:   "list [--since SEQ] [--limit N]",
		Short: "List audit records after a sequence number",
		Long: `List the audit log's records with a sequence number greater than --since
(default: all), oldest first. Needs the admin role: records name every caller
and digest. 'signctl audit verify' checks that they have not been tampered with.`,
		Example: `  signctl audit list --since 100
  signctl audit list -o json | jq '.[] | select(.outcome != "ok")'`,
		Args: exactArgs(0, "no arguments"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if opts.limit < 0 {
				return exitErr(ExitUsage, fmt.Errorf("--limit must not be negative"))
			}
			ctx, c, done, err := g.connect(cmd)
			if err != nil {
				return err
			}
			defer done()

			const page = 1000
			var out []auditRecordJSON
			var tw *tabwriter.Writer
			if !g.json() {
				tw = tabwriter.NewWriter(g.stdout, 0, 4, 2, ' ', 0)
				fmt.Fprintln(tw, "SEQ\tTIME\tCALLER\tOPERATION\tOUTCOME\tKEY\tORG\tDIGEST\tDETAIL")
			}
			since, n := opts.since, 0
			for {
				resp, err := c.Audit.ListAudit(ctx, &signerv1.ListAuditRequest{Since: since, Limit: page})
				if err != nil {
					return c.FromStatus(err)
				}
				recs := resp.GetRecords()
				for _, r := range recs {
					if opts.limit > 0 && n == opts.limit {
						break
					}
					n++
					j := toAuditRecordJSON(r)
					if tw != nil {
						digest := j.Digest
						if len(digest) > 16 {
							digest = digest[:12] + "…"
						}
						printf(tw, "%d\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", j.Seq, j.Time, j.Caller, j.Operation, j.Outcome, j.Key, j.Org, digest, j.Detail)
					} else {
						out = append(out, j)
					}
				}
				if len(recs) < page || (opts.limit > 0 && n == opts.limit) {
					break
				}
				last := recs[len(recs)-1].GetSeq()
				if last <= since {
					// Sequence numbers went backwards: the log is damaged.
					// Stop rather than page forever; verify names the place.
					printf(g.stderr, "signctl: audit records are out of order after seq %d; run signctl audit verify\n", since)
					break
				}
				since = last
			}
			if tw != nil {
				return tw.Flush()
			}
			if out == nil {
				out = []auditRecordJSON{}
			}
			return printJSON(g.stdout, out)
		},
	}
	cmd.Flags().Uint64Var(&opts.since, "since", 0, "list records with a sequence number greater than SEQ")
	cmd.Flags().IntVar(&opts.limit, "limit", 0, "list at most N records (0: all)")
	return cmd
}

func toAuditRecordJSON(r *signerv1.AuditRecord) auditRecordJSON {
	j := auditRecordJSON{
		Seq: r.GetSeq(), Caller: r.GetCaller(), Operation: r.GetOperation(), Key: r.GetKey(), Org: r.GetOrg(),
		Digest: r.GetDigest(), Outcome: r.GetOutcome(), Detail: r.GetDetail(),
		PrevHash: hex.EncodeToString(r.GetPrevHash()), Hash: hex.EncodeToString(r.GetHash()),
	}
	if r.GetTime() != nil {
		j.Time = r.GetTime().AsTime().UTC().Format(time.RFC3339Nano)
	}
	return j
}

// auditVerifyResult is the -o json shape of signctl audit verify.
type auditVerifyResult struct {
	Intact              bool            `json:"intact"`
	Mode                string          `json:"mode"`
	DB                  string          `json:"db,omitempty"`
	HeadSeq             uint64          `json:"head_seq"`
	HeadHash            string          `json:"head_hash"`
	Checkpoints         uint64          `json:"checkpoints"`
	LatestCheckpoint    *checkpointJSON `json:"latest_checkpoint,omitempty"`
	AuditKeyFingerprint string          `json:"audit_key_fingerprint"`
	// LogKey and NotesChecked: offline with --log-key, the key the notes'
	// signatures were checked with and how many notes there were.
	LogKey       string `json:"log_key,omitempty"`
	NotesChecked *int   `json:"notes_checked,omitempty"`
	// NotesMissing: checkpoints without a note (offline with --log-key).
	NotesMissing *int         `json:"checkpoints_without_note,omitempty"`
	State        *stateJSON   `json:"state,omitempty"`
	Problem      *problemJSON `json:"problem,omitempty"`
}

// stateJSON is the security state's standing in the log: its digest, the
// checkpoint it was compared with, and whether that one vouches for it.
type stateJSON struct {
	Digest string `json:"digest"`
	// Vouched: the checkpoint at VouchedAt signed exactly this state.
	Vouched   bool   `json:"vouched"`
	VouchedAt uint64 `json:"vouched_at"`
	// ChangesAfterCheckpoint: recorded state changes after that
	// checkpoint, vouched for by the chain alone until the next one.
	ChangesAfterCheckpoint int `json:"changes_after_checkpoint"`
}

type checkpointJSON struct {
	Seq            uint64 `json:"seq"`
	Hash           string `json:"hash"`
	Time           string `json:"time"`
	KeyFingerprint string `json:"key_fingerprint"`
	StateDigest    string `json:"state_digest,omitempty"`
}

type problemJSON struct {
	Seq     uint64 `json:"seq"`
	Kind    string `json:"kind"`
	Message string `json:"message"`
}

func newAuditVerifyCommand(g *globals) *cobra.Command {
	var opts struct{ db, auditKey, logKey string }
	cmd := &cobra.Command{
		Use:   "verify [--db FILE --audit-key PUB.pem [--log-key VKEY]]",
		Short: "Check the audit chain and its signed checkpoints; name the first bad record",
		Long: `Check the whole audit log: every record's hash and its link to the previous
record, the recorded head, every checkpoint's signature by the audit key, and
every checkpoint against the record it covers. The first bad record is named
with its sequence number and what happened to it: edited, inserted, deleted,
reordered, broken link, bad checkpoint signature or wrong checkpoint key.

Online (no flags): the daemon checks, with the audit key as its HSM holds it.
Offline (--db FILE --audit-key PUB.pem): no daemon; FILE, a copy of the
database, is opened read-only and never modified. PUB.pem is the audit key
from 'signctl audit public-key', kept where whoever can write the database
cannot change it. A running signerd locks its database: copy it first.
Offline, each checkpoint's signed note (the transparency log's) is checked
against the tree; with --log-key VKEY (from 'signctl log public-key', kept
as the audit key is) its signature is checked too, as the daemon does
online.

Exit 0 when intact, 1 when the log is damaged, 2 for bad input, 3 when the
daemon is unreachable.`,
		Example: `  signctl audit verify
  cp /var/lib/signerd/signerd.db /tmp/copy.db
  signctl audit verify --db /tmp/copy.db --audit-key audit.pub.pem -o json
  signctl audit verify --db /tmp/copy.db --audit-key audit.pub.pem --log-key log.vkey`,
		Args: exactArgs(0, "no arguments"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if (opts.db == "") != (opts.auditKey == "") {
				return exitErr(ExitUsage, fmt.Errorf("offline verification needs both --db FILE and --audit-key PUB.pem"))
			}
			if opts.logKey != "" && opts.db == "" {
				return exitErr(ExitUsage, fmt.Errorf("--log-key is for offline verification (--db): online, the daemon checks the notes with the log key its HSM holds"))
			}
			var (
				res auditVerifyResult
				err error
			)
			if opts.db != "" {
				// Local work, as long as the log is: --timeout is how
				// long to wait for the daemon, which is not asked.
				res, err = verifyAuditOffline(cmd.Context(), opts.db, opts.auditKey, opts.logKey)
			} else {
				ctx, cancel := g.ctx(cmd.Context())
				defer cancel()
				res, err = verifyAuditOnline(ctx, g)
			}
			if err != nil {
				return err
			}
			if g.json() {
				if err := printJSON(g.stdout, res); err != nil {
					return err
				}
			} else {
				printAuditVerdict(g, res)
			}
			if !res.Intact {
				return &exitError{code: ExitVerifyFail, reported: true,
					err: fmt.Errorf("audit log broken at seq %d (%s)", res.Problem.Seq, res.Problem.Kind)}
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&opts.db, "db", "", "verify this copy of the database offline (opened read-only)")
	cmd.Flags().StringVar(&opts.auditKey, "audit-key", "", "the audit public key (PEM) to check checkpoints with, offline")
	cmd.Flags().StringVar(&opts.logKey, "log-key", "", "the log's note verifier key, or a file holding it: check the checkpoints' notes' signatures too, offline")
	return cmd
}

func verifyAuditOnline(ctx context.Context, g *globals) (auditVerifyResult, error) {
	c, err := g.dial()
	if err != nil {
		return auditVerifyResult{}, err
	}
	defer c.Close()
	resp, err := c.Audit.VerifyAudit(ctx, &signerv1.VerifyAuditRequest{})
	if err != nil {
		return auditVerifyResult{}, c.FromStatus(err)
	}
	res := auditVerifyResult{
		Intact: resp.GetIntact(), Mode: "online", HeadSeq: resp.GetHeadSeq(), HeadHash: hex.EncodeToString(resp.GetHeadHash()),
		Checkpoints: uint64(resp.GetCheckpointCount()), AuditKeyFingerprint: resp.GetAuditKeyFingerprint(),
	}
	if cp := resp.GetLatestCheckpoint(); cp != nil {
		res.LatestCheckpoint = &checkpointJSON{Seq: cp.GetSeq(), Hash: hex.EncodeToString(cp.GetHash()), KeyFingerprint: cp.GetKeyFingerprint(),
			StateDigest: hex.EncodeToString(cp.GetStateDigest())}
		if cp.GetTime() != nil {
			res.LatestCheckpoint.Time = cp.GetTime().AsTime().UTC().Format(time.RFC3339Nano)
		}
	}
	if d := resp.GetStateDigest(); len(d) > 0 {
		res.State = &stateJSON{Digest: hex.EncodeToString(d), VouchedAt: resp.GetStateVouchedAt(), ChangesAfterCheckpoint: int(resp.GetStateChangesAfterCheckpoint())}
		res.State.Vouched = res.State.VouchedAt > 0 && res.LatestCheckpoint != nil &&
			res.LatestCheckpoint.Seq == res.State.VouchedAt && res.LatestCheckpoint.StateDigest == res.State.Digest
	}
	if p := resp.GetProblem(); p != nil {
		res.Problem = &problemJSON{Seq: p.GetSeq(), Kind: p.GetKind(), Message: p.GetMessage()}
	} else if !res.Intact {
		return res, fmt.Errorf("the daemon says the audit log is damaged but names no problem: %w", errdefs.ErrInternal)
	}
	return res, nil
}

func verifyAuditOffline(ctx context.Context, dbPath, keyPath, logKeyFlag string) (auditVerifyResult, error) {
	var logKey string
	if logKeyFlag != "" {
		var err error
		if _, logKey, err = readLogKey("log-key", logKeyFlag); err != nil {
			return auditVerifyResult{}, err
		}
	}
	pemBytes, err := os.ReadFile(keyPath)
	if err != nil {
		return auditVerifyResult{}, exitErr(ExitUsage, fmt.Errorf("audit key: %w", err))
	}
	pub, err := auditlog.ParsePublicKeyPEM(pemBytes)
	if err != nil {
		return auditVerifyResult{}, exitErr(ExitUsage, fmt.Errorf("audit key %s: %w", keyPath, err))
	}
	if st, err := os.Stat(dbPath); err != nil || !st.Mode().IsRegular() {
		if err == nil {
			err = fmt.Errorf("not a regular file")
		}
		return auditVerifyResult{}, exitErr(ExitUsage, fmt.Errorf("database %s: %w", dbPath, err))
	}
	// A damaged file is a finding (exit 1), not bad input: CheckFile reads
	// the meta pages without bbolt, Guard keeps bbolt's panics and faults
	// on damaged pages from killing signctl. Only a file that was never a
	// bbolt database is bad input.
	fileErr := boltstore.CheckFile(dbPath)
	var damage *boltstore.DamageError
	if fileErr != nil && !errors.As(fileErr, &damage) {
		return auditVerifyResult{}, exitErr(ExitUsage, fileErr)
	}
	var (
		rep   auditlog.Report
		ce    *store.ChainError
		notes int
	)
	err = boltstore.Guard(dbPath, func() error {
		st, err := boltstore.Open(ctx, dbPath, boltstore.Options{ReadOnly: true})
		if err != nil {
			return err
		}
		defer st.Close()
		rep, err = auditlog.Verify(ctx, st, pub)
		if err == nil && logKey != "" {
			notes, err = verifyNotesOffline(ctx, st, logKey)
		}
		if err != nil && !errors.As(err, &ce) {
			return err
		}
		return st.WalkPages(ctx)
	})
	var readErr *boltstore.DamageError
	switch {
	case errors.As(err, &readErr):
		damage = mergeDamage(damage, readErr)
	case err != nil && damage != nil:
		// bbolt refused the file CheckFile already found damaged.
		damage = mergeDamage(damage, &boltstore.DamageError{Path: dbPath, Problems: []string{err.Error()}})
	case err != nil:
		if errors.Is(err, errdefs.ErrUnavailable) {
			err = fmt.Errorf("%w; copy the file and verify the copy, or run signctl audit verify without --db", err)
		}
		return auditVerifyResult{}, exitErr(ExitUsage, err)
	}
	res := auditVerifyResult{
		Intact: ce == nil && damage == nil, Mode: "offline", DB: dbPath, HeadSeq: rep.HeadSeq, HeadHash: hex.EncodeToString(rep.HeadHash),
		Checkpoints: uint64(rep.Checkpoints), AuditKeyFingerprint: auditlog.Fingerprint(pub),
	}
	if logKey != "" && ce == nil && damage == nil {
		missing := rep.Checkpoints - notes
		res.LogKey, res.NotesChecked, res.NotesMissing = logKey, &notes, &missing
	}
	if cp := rep.Latest; cp != nil {
		res.LatestCheckpoint = &checkpointJSON{Seq: cp.Seq, Hash: hex.EncodeToString(cp.Hash), Time: cp.Time.UTC().Format(time.RFC3339Nano), KeyFingerprint: cp.KeyFingerprint,
			StateDigest: hex.EncodeToString(cp.StateDigest)}
	}
	if st := rep.State; st != nil {
		res.State = &stateJSON{Digest: hex.EncodeToString(st.Digest), Vouched: st.Matches(), VouchedAt: st.VouchedAt, ChangesAfterCheckpoint: st.ChangesAfter}
	}
	switch {
	case damage != nil:
		res.Problem = damageProblem(ctx, dbPath, damage, ce)
	case ce != nil:
		res.Problem = &problemJSON{Seq: ce.Seq, Kind: ce.Kind, Message: ce.Message}
	}
	return res, nil
}

// verifyNotesOffline checks every checkpoint note's signature with the log
// key vkey, as the daemon does online, and counts the notes.
func verifyNotesOffline(ctx context.Context, st *boltstore.Store, vkey string) (int, error) {
	cps, err := st.ListCheckpoints(ctx)
	if err != nil {
		return 0, err
	}
	n := 0
	for _, c := range cps {
		if err := auditlog.VerifyCheckpointNote(vkey, c); err != nil {
			return n, err
		}
		if len(c.Note) > 0 {
			n++
		}
	}
	return n, nil
}

// mergeDamage is a's problems and then b's, each said once (the check of
// the file and bbolt's open can find the same one).
func mergeDamage(a, b *boltstore.DamageError) *boltstore.DamageError {
	if a == nil {
		return b
	}
	problems := append([]string(nil), a.Problems...)
	for _, p := range b.Problems {
		if !slices.Contains(problems, p) {
			problems = append(problems, p)
		}
	}
	return &boltstore.DamageError{Path: a.Path, Problems: problems}
}

// damageProblem says what is damaged and what could still be read: the
// audit records reachable in key order before the damage stopped the
// reading (a second, guarded pass), and what the chain check found in them.
func damageProblem(ctx context.Context, dbPath string, damage *boltstore.DamageError, ce *store.ChainError) *problemJSON {
	var (
		last  uint64
		count int
	)
	readErr := boltstore.Guard(dbPath, func() error {
		st, err := boltstore.Open(ctx, dbPath, boltstore.Options{ReadOnly: true})
		if err != nil {
			return err
		}
		defer st.Close()
		return st.ReadableAudit(ctx, &last, &count)
	})
	p := &problemJSON{Kind: store.ChainDamagedFile, Message: damage.Error()}
	switch {
	case readErr == nil:
		p.Message += fmt.Sprintf("; all %d audit records could be read (the last is %d)", count, last)
	case count == 0:
		p.Seq = 1
		p.Message += "; no audit record could be read"
	default:
		p.Seq = last + 1
		p.Message += fmt.Sprintf("; %d audit records could be read, up to record %d, then: %v", count, last, readErr)
	}
	if ce != nil {
		p.Message += fmt.Sprintf("; in what could be read, record %d: %s: %s", ce.Seq, ce.Kind, ce.Message)
	}
	return p
}

func printAuditVerdict(g *globals, r auditVerifyResult) {
	if !r.Intact {
		switch r.Problem.Kind {
		case store.ChainDamagedFile:
			// The message says the file is damaged; the kind would repeat it.
			printf(g.stdout, "BROKEN: %s\n", r.Problem.Message)
			return
		case store.ChainStateUnexplained:
			printf(g.stdout, "BROKEN: %s: %s\n", r.Problem.Kind, r.Problem.Message)
			return
		}
		printf(g.stdout, "BROKEN: audit log record %d: %s: %s\n", r.Problem.Seq, r.Problem.Kind, r.Problem.Message)
		return
	}
	printf(g.stdout, "OK: audit log intact: %s, head %s\n", count(r.HeadSeq, "record"), r.HeadHash)
	switch cp := r.LatestCheckpoint; {
	case cp == nil:
		printf(g.stdout, "no signed checkpoint yet: a removed tail would not be detected\n")
	default:
		printf(g.stdout, "%s by audit key %s; newest at record %d, %s\n", count(r.Checkpoints, "checkpoint"), r.AuditKeyFingerprint, cp.Seq, cp.Time)
		switch {
		case cp.Seq+1 == r.HeadSeq:
			printf(g.stdout, "record %d is protected by the chain alone until the next checkpoint\n", r.HeadSeq)
		case cp.Seq < r.HeadSeq:
			printf(g.stdout, "records %d to %d are protected by the chain alone until the next checkpoint\n", cp.Seq+1, r.HeadSeq)
		}
	}
	if r.NotesChecked != nil {
		printf(g.stdout, "%s signed by log key %s\n", count(uint64(*r.NotesChecked), "checkpoint note"), r.LogKey)
		if m := r.NotesMissing; m != nil && *m > 0 {
			printf(g.stdout, "%s without a note: written where the HSM had no log key, or the note was removed (a note is not covered by its checkpoint's ECDSA signature)\n",
				count(uint64(*m), "checkpoint"))
		}
	}
	switch st := r.State; {
	case st == nil:
	case st.Vouched:
		printf(g.stdout, "security state %s vouched for by the checkpoint at record %d\n", st.Digest, st.VouchedAt)
	case st.VouchedAt > 0:
		printf(g.stdout, "security state %s: changed by %d recorded operations after the checkpoint at record %d; vouched for by the chain alone until the next checkpoint\n",
			st.Digest, st.ChangesAfterCheckpoint, st.VouchedAt)
	default:
		printf(g.stdout, "security state %s: no checkpoint vouches for it yet (a database from before state digests; signerd vouches for it when it next starts)\n", st.Digest)
	}
}

func newAuditPublicKeyCommand(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "public-key",
		Short: "Print the audit checkpoint key's public key as SPKI PEM",
		Long: `Print the public key of the audit key, which signs the audit log's checkpoints,
as SPKI PEM. Keep a copy where whoever can write signerd's database cannot change
it: 'signctl audit verify --db FILE --audit-key PUB.pem' checks a database with it.`,
		Example: "  signctl audit public-key > audit.pub.pem",
		Args:    exactArgs(0, "no arguments"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, c, done, err := g.connect(cmd)
			if err != nil {
				return err
			}
			defer done()
			resp, err := c.Audit.GetAuditPublicKey(ctx, &signerv1.GetAuditPublicKeyRequest{})
			if err != nil {
				return c.FromStatus(err)
			}
			if g.json() {
				out := map[string]string{
					"public_key_pem": resp.GetPublicKeyPem(),
					"fingerprint":    resp.GetFingerprint(),
					"algorithm":      algorithmName(resp.GetAlgorithm()),
					"cka_id":         resp.GetCkaId(),
				}
				if resp.GetCreatedAt() != nil {
					out["created_at"] = resp.GetCreatedAt().AsTime().UTC().Format(time.RFC3339)
				}
				return printJSON(g.stdout, out)
			}
			writeRaw(g.stdout, resp.GetPublicKeyPem())
			if !strings.HasSuffix(resp.GetPublicKeyPem(), "\n") {
				printf(g.stdout, "\n")
			}
			return nil
		},
	}
}
