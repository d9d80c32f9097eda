package cli

// The witness. Its state is one small JSON file in --state DIR naming the
// log (origin and key) and holding the last checkpoint it accepted. Each
// run fetches the daemon's checkpoint, checks its signature with the key
// from the state (never one the daemon offers), and accepts it only if a
// consistency proof shows it extends the accepted one; otherwise it keeps
// the refused note beside the state, as evidence, and exits 1. The state is
// replaced atomically (temporary file, fsync, rename, fsync of the
// directory), under an exclusive lock, so a crash or two overlapping runs
// (a cron job and a hand run) never leave half a state or lose a refusal.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/sys/unix"

	"github.com/signerd/signerd/client"
	signerv1 "github.com/signerd/signerd/gen/signer/v1"
	"github.com/signerd/signerd/internal/errdefs"
	"github.com/signerd/signerd/internal/logproof"
)

const (
	monitorStateFile = "state.json"
	monitorLockFile  = "lock"
	maxMonitorState  = 64 << 10
)

// monitorState is the witness's state file.
type monitorState struct {
	Origin string `json:"origin"`
	LogKey string `json:"log_key"`
	// Checkpoint is the signed note of the last accepted checkpoint.
	Checkpoint string    `json:"checkpoint"`
	TreeSize   uint64    `json:"tree_size"`
	AcceptedAt time.Time `json:"accepted_at"`
}

// monitorResult is the -o json shape of log monitor.
type monitorResult struct {
	Accepted         bool   `json:"accepted"`
	Reason           string `json:"reason"`
	Message          string `json:"message,omitempty"`
	Origin           string `json:"origin"`
	TreeSize         uint64 `json:"tree_size"`
	RootHash         []byte `json:"root_hash,omitempty"`
	PreviousTreeSize uint64 `json:"previous_tree_size"`
	FirstRun         bool   `json:"first_run"`
	ConsistencyProof bool   `json:"consistency_proof_checked"`
	Evidence         string `json:"evidence,omitempty"`
}

func newLogMonitorCommand(g *globals) *cobra.Command {
	var opts struct{ state, logKey string }
	cmd := &cobra.Command{
		Use:   "monitor --state DIR [--log-key VKEY]",
		Short: "Witness the log: accept only checkpoints that extend the last one",
		Long: `Fetch the log's latest checkpoint and accept it only if it is signed by the
log key and extends the checkpoint accepted last time (an RFC 9162
consistency proof from the daemon, checked here). DIR holds the state: the
log's origin and key and the accepted checkpoint.

The first run needs --log-key (the verifier key, or a file holding it, from
a source you trust rather than from this daemon); later runs use the key in
the state, and refuse a different --log-key.

A checkpoint of another origin, not signed by the log key, of fewer leaves
(a rollback), or of a tree that does not extend the accepted one (a fork: a
rewritten history, or a split view shown to someone else) is refused: the
message starts with ALERT, the refused note is kept in DIR as evidence, the
state is left alone and the exit code is 1. Run it from cron or a systemd
timer, as another organisation than the one that runs signerd.`,
		Example: `  signctl log public-key > log.vkey   # once, compared out of band
  signctl log monitor --state /var/lib/signerd-witness --log-key log.vkey`,
		Args: exactArgs(0, "no arguments"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := required(cmd, "state"); err != nil {
				return err
			}
			ctx, cancel := g.ctx(cmd.Context())
			defer cancel()
			res, err := runMonitor(ctx, g, opts.state, opts.logKey)
			return reportMonitor(g, res, err)
		},
	}
	f := cmd.Flags()
	f.StringVar(&opts.state, "state", "", "the witness's state directory (created if missing)")
	f.StringVar(&opts.logKey, "log-key", "", "the log's note verifier key, or a file holding it (needed on the first run)")
	return cmd
}

func runMonitor(ctx context.Context, g *globals, dir, logKeyFlag string) (*monitorResult, error) {
	// A first run that will be refused makes nothing (no directory to
	// find and wonder about).
	if _, err := os.Stat(dir); errors.Is(err, fs.ErrNotExist) && logKeyFlag == "" {
		return nil, exitErr(ExitUsage, fmt.Errorf("the first run (no %s in %s) needs --log-key: the log's verifier key from a source you trust", monitorStateFile, dir))
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, exitErr(ExitUsage, fmt.Errorf("--state %s: %w", dir, err))
	}
	unlock, err := lockDir(dir)
	if err != nil {
		return nil, err
	}
	defer unlock()
	prev, err := loadMonitorState(dir)
	if err != nil {
		return nil, err
	}
	key := ""
	switch {
	case prev != nil:
		key = prev.LogKey
		if logKeyFlag != "" {
			_, given, err := readLogKey("log-key", logKeyFlag)
			if err != nil {
				return nil, err
			}
			if given != prev.LogKey {
				return nil, errdefs.Verification(errdefs.ReasonLogCheckpointInvalid,
					"--log-key %s is not the key this witness follows (%s, in %s); a new key is a new log: use another --state",
					given, prev.LogKey, filepath.Join(dir, monitorStateFile))
			}
		}
	case logKeyFlag == "":
		return nil, exitErr(ExitUsage, fmt.Errorf("the first run (no %s in %s) needs --log-key: the log's verifier key from a source you trust", monitorStateFile, dir))
	default:
		_, key, err = readLogKey("log-key", logKeyFlag)
		if err != nil {
			return nil, err
		}
	}
	v, err := logproof.Verifier(key)
	if err != nil {
		return nil, exitErr(ExitUsage, fmt.Errorf("%s: %w", filepath.Join(dir, monitorStateFile), err))
	}

	c, err := g.dial()
	if err != nil {
		return nil, err
	}
	defer c.Close()
	resp, err := c.Log.GetCheckpoint(ctx, &signerv1.GetCheckpointRequest{})
	if err != nil {
		return nil, c.FromStatus(err)
	}
	signed := resp.GetCheckpoint()
	res := &monitorResult{}
	next, err := logproof.OpenCheckpoint(signed, v)
	if err != nil {
		res.Evidence = keepEvidence(dir, signed)
		return res, errdefs.Verification(errdefs.ReasonLogCheckpointInvalid, "%v", err)
	}
	res.Origin, res.TreeSize, res.RootHash = next.Origin, next.Size, next.Root
	if prev == nil {
		res.FirstRun = true
	} else {
		old, err := logproof.OpenCheckpoint([]byte(prev.Checkpoint), v)
		if err != nil {
			return nil, exitErr(ExitUsage, fmt.Errorf("%s: the accepted checkpoint no longer verifies with the state's key: %w", filepath.Join(dir, monitorStateFile), err))
		}
		res.PreviousTreeSize = old.Size
		if next.Origin != prev.Origin {
			res.Evidence = keepEvidence(dir, signed)
			return res, errdefs.Verification(errdefs.ReasonLogCheckpointInvalid, "the checkpoint is of origin %q; this witness follows %q", next.Origin, prev.Origin)
		}
		checked, err := logproof.Extends(old, next, consistencyFetcher(ctx, c))
		switch {
		case errors.Is(err, logproof.ErrRollback):
			res.Evidence = keepEvidence(dir, signed)
			return res, errdefs.Verification(errdefs.ReasonLogRollback, "%v", err)
		case errors.Is(err, logproof.ErrNotExtending):
			res.Evidence = keepEvidence(dir, signed)
			return res, errdefs.Verification(errdefs.ReasonLogFork, "%v", err)
		case errors.Is(err, logproof.ErrCheckpoint):
			res.Evidence = keepEvidence(dir, signed)
			return res, errdefs.Verification(errdefs.ReasonLogCheckpointInvalid, "%v", err)
		case err != nil && proofRefused(err):
			// The daemon signed a larger tree and will not show that it
			// extends the accepted one: what a forked log would do.
			res.Evidence = keepEvidence(dir, signed)
			return res, errdefs.Verification(errdefs.ReasonLogFork,
				"the daemon served a checkpoint of %d leaves signed by the log key but refused to prove that it extends the accepted one of %d: %v", next.Size, old.Size, err)
		case err != nil:
			// Not reached, or out of time: exit 3, and the note that could
			// not be checked is kept all the same.
			if ev := keepEvidence(dir, signed); ev != "" {
				return nil, fmt.Errorf("%w (the checkpoint of %d leaves that could not be checked is kept in %s)", err, next.Size, ev)
			}
			return nil, err
		}
		res.ConsistencyProof = checked
		if old.Size == next.Size {
			res.Accepted = true
			return res, nil // nothing new: leave the state as it is
		}
	}
	st := monitorState{Origin: next.Origin, LogKey: key, Checkpoint: string(signed), TreeSize: next.Size, AcceptedAt: time.Now().UTC()}
	if err := saveMonitorState(dir, st); err != nil {
		return nil, exitErr(ExitUsage, err)
	}
	res.Accepted = true
	return res, nil
}

// proofRefused reports whether the daemon answered a consistency proof
// request with a refusal (it has no such proof, or says the sizes are
// wrong) rather than not answering or failing (unreachable, out of time,
// throttled, this client not allowed, an internal error or a reset
// stream, which a transport fault also gives: exit 3, the note kept).
func proofRefused(err error) bool {
	for _, k := range []error{errdefs.ErrInvalidArgument, errdefs.ErrNotFound, errdefs.ErrFailedPrecondition} {
		if errors.Is(err, k) {
			return true
		}
	}
	return false
}

// consistencyFetcher asks the daemon for consistency proofs.
func consistencyFetcher(ctx context.Context, c *client.Client) logproof.ConsistencyFetcher {
	return func(size1, size2 uint64) ([][]byte, error) {
		resp, err := c.Log.GetConsistencyProof(ctx, &signerv1.GetConsistencyProofRequest{FirstSize: size1, SecondSize: size2})
		if err != nil {
			return nil, c.FromStatus(err)
		}
		return resp.GetProof(), nil
	}
}

func reportMonitor(g *globals, res *monitorResult, err error) error {
	if res == nil {
		return err // usage, daemon or permission error
	}
	if err != nil {
		v, ok := errdefs.AsVerification(err)
		if !ok {
			return err
		}
		res.Accepted, res.Reason, res.Message = false, string(v.Reason), v.Message
	}
	if g.json() {
		if perr := printJSON(g.stdout, res); perr != nil {
			return perr
		}
	} else if res.Accepted {
		switch {
		case res.FirstRun:
			printf(g.stdout, "OK: first checkpoint of %s accepted: %d leaves\n", res.Origin, res.TreeSize)
		case res.PreviousTreeSize == res.TreeSize:
			printf(g.stdout, "OK: %s unchanged at %d leaves\n", res.Origin, res.TreeSize)
		default:
			printf(g.stdout, "OK: %s grew from %d to %d leaves; consistency proof verified\n", res.Origin, res.PreviousTreeSize, res.TreeSize)
		}
	} else {
		evidence := ""
		if res.Evidence != "" {
			evidence = "; the refused checkpoint is kept in " + res.Evidence
		}
		origin := res.Origin
		if origin == "" {
			origin = "the log" // a checkpoint too damaged to name its origin
		}
		printf(g.stderr, "ALERT: %s: checkpoint refused: %s: %s%s\n", origin, res.Reason, res.Message, evidence)
	}
	if err != nil {
		return &exitError{code: ExitVerifyFail, err: err, reported: true}
	}
	return nil
}

// lockDir takes an exclusive lock on DIR/lock for the run.
func lockDir(dir string) (func(), error) {
	f, err := os.OpenFile(filepath.Join(dir, monitorLockFile), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, exitErr(ExitUsage, fmt.Errorf("--state %s: %w", dir, err))
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX); err != nil {
		f.Close()
		return nil, exitErr(ExitUsage, fmt.Errorf("--state %s: lock: %w", dir, err))
	}
	return func() { f.Close() }, nil
}

// loadMonitorState reads DIR/state.json; nil when there is none yet.
func loadMonitorState(dir string) (*monitorState, error) {
	path := filepath.Join(dir, monitorStateFile)
	if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	data, err := readSmallFile(path, maxMonitorState)
	if err != nil {
		return nil, err
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var st monitorState
	if err := dec.Decode(&st); err != nil {
		return nil, exitErr(ExitUsage, fmt.Errorf("%s is damaged (%v); it was not changed", path, err))
	}
	if st.Origin == "" || st.LogKey == "" || st.Checkpoint == "" {
		return nil, exitErr(ExitUsage, fmt.Errorf("%s is damaged (origin, log_key or checkpoint missing); it was not changed", path))
	}
	return &st, nil
}

// saveMonitorState replaces DIR/state.json atomically and durably.
func saveMonitorState(dir string, st monitorState) error {
	data, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return err
	}
	path := filepath.Join(dir, monitorStateFile)
	if err := writeFileAtomic(path, append(data, '\n'), 0o600); err != nil {
		return err
	}
	return syncDir(dir)
}

// syncDir makes a rename in dir durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("cannot sync %s: %w", dir, err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("cannot sync %s: %w", dir, err)
	}
	return nil
}

// keepEvidence saves a refused note in DIR and returns its path ("" if it
// could not be saved; the refusal stands either way).
func keepEvidence(dir string, signed []byte) string {
	path := filepath.Join(dir, "refused-"+time.Now().UTC().Format("20060102T150405.000000000Z")+".note")
	if err := writeFileAtomic(path, signed, 0o600); err != nil {
		return ""
	}
	return path
}
