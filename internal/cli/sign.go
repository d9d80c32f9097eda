package cli

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"runtime"
	"sync"

	"github.com/spf13/cobra"

	signerv1 "github.com/signerd/signerd/gen/signer/v1"
	"github.com/signerd/signerd/internal/pkgsig"
)

func newSignCommand(g *globals) *cobra.Command {
	var opts struct{ key, out string }
	cmd := &cobra.Command{
		Use:   "sign FILE... --key NAME [--out PATH]",
		Short: "Sign package files (Cloacina detached signatures)",
		Long: `Sign package files with an Ed25519 key held in signerd's HSM.

Each FILE is hashed locally (streamed through SHA-256, never read whole into
memory); only its digest goes to the daemon, which signs it in the HSM, records
the signature and returns Cloacina's detached signature document. signctl
writes it to FILE.sig (or --out, with a single FILE) atomically: a failure
leaves no partial .sig behind.`,
		Example: `  signctl sign build/libworkflow.so --key release
  signctl sign dist/*.so --key release`,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) == 0 {
				return exitErr(ExitUsage, fmt.Errorf("sign needs at least one FILE (see signctl sign --help)"))
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := required(cmd, "key"); err != nil {
				return err
			}
			if opts.out != "" && len(args) != 1 {
				return exitErr(ExitUsage, fmt.Errorf("--out works with a single FILE"))
			}
			// Hash everything first (in parallel: hashing is CPU-bound): a
			// missing or unreadable file fails the command before anything
			// is signed. Hashing is local work, bounded by the files and
			// not by --timeout, which is how long to wait for the daemon.
			digests, err := hashFiles(cmd.Context(), args)
			if err != nil {
				return exitErr(localExit(err), err)
			}
			// So does a signature that could not be written: an HSM
			// signature, recorded and audited, should not go nowhere.
			outs := make([]string, len(args))
			for i, path := range args {
				outs[i] = opts.out
				if outs[i] == "" {
					outs[i] = pkgsig.SidecarPath(path)
				}
				if err := checkWritable(outs[i]); err != nil {
					return exitErr(writeExit(err), err)
				}
			}
			ctx, cancel := g.ctx(cmd.Context())
			defer cancel()
			c, err := g.dial()
			if err != nil {
				return err
			}
			defer c.Close()
			reqs := make([]*signerv1.SignRequest, len(args))
			for i, path := range args {
				reqs[i] = &signerv1.SignRequest{KeyName: opts.key, Digest: digests[i][:], ArtifactName: filepath.Base(path)}
			}
			// Each .sig is written (atomically, fsync'd) as its response
			// arrives, several at a time so that a large batch is not
			// paced by one fsync after another; results print in order.
			type outcome struct {
				out     string
				resp    *signerv1.SignResponse
				itemErr error
				wErr    error
			}
			outcomes := make([]outcome, len(args))
			var wg sync.WaitGroup
			sem := make(chan struct{}, 8)
			err = c.SignBatch(ctx, reqs, func(i int, resp *signerv1.SignResponse, itemErr error) error {
				if itemErr != nil {
					outcomes[i].itemErr = itemErr
					return nil
				}
				out := outs[i]
				outcomes[i].out, outcomes[i].resp = out, resp
				wg.Add(1)
				sem <- struct{}{}
				go func() {
					defer func() { <-sem; wg.Done() }()
					outcomes[i].wErr = writeFileAtomic(out, resp.GetSignatureDocument(), 0o644)
				}()
				return nil
			})
			wg.Wait()
			var results []any // signResult, or fileError for a file not signed or not written
			var firstErr error
			failed := func(path string, err error) {
				rep := describe(err)
				printf(g.stderr, "signctl: %s: %s\n", path, rep.Message)
				results = append(results, fileError{File: path, errorReport: rep})
				if firstErr == nil {
					firstErr = err
				}
			}
			for i, o := range outcomes {
				path := args[i]
				switch {
				case o.itemErr != nil:
					failed(path, o.itemErr)
				case o.wErr != nil:
					// Signed, recorded and not written (the place
					// changed since the check above, or the disk
					// failed): said for this file, the others go on.
					failed(path, exitErr(writeExit(o.wErr), o.wErr))
				case o.resp != nil:
					r := signResult{File: path, Signature: o.out, PackageHash: pkgsig.HexDigest(digests[i][:]), Key: o.resp.GetKeyName(), KeyVersion: o.resp.GetKeyVersion(), Fingerprint: o.resp.GetKeyFingerprint()}
					results = append(results, r)
					if !g.json() {
						printf(g.stdout, "signed %s -> %s (key %s v%d, fingerprint %s)\n", path, r.Signature, r.Key, r.KeyVersion, r.Fingerprint)
					}
				}
			}
			if err != nil {
				return err
			}
			if g.json() {
				// One file: its result, or the error object every command
				// prints; several: one entry per file, in order.
				var perr error
				if len(args) == 1 && len(results) == 1 {
					if fe, ok := results[0].(fileError); ok {
						perr = printJSON(g.stdout, fe.errorReport)
					} else {
						perr = printJSON(g.stdout, results[0])
					}
				} else if len(args) > 1 {
					perr = printJSON(g.stdout, results)
				}
				if perr != nil {
					return perr
				}
			}
			if firstErr != nil {
				// Every failure was printed above, file by file.
				return &exitError{code: exitCode(firstErr), err: firstErr, reported: true}
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&opts.key, "key", "", "the signing key's name (ed25519)")
	cmd.Flags().StringVar(&opts.out, "out", "", "where to write the signature (default FILE.sig)")
	return cmd
}

// fileError is the -o json entry of a file that was not signed (or whose
// signature was not written) among several.
type fileError struct {
	File string `json:"file"`
	errorReport
}

// signResult is the -o json shape of one signed file.
type signResult struct {
	File        string `json:"file"`
	Signature   string `json:"signature"`
	PackageHash string `json:"package_hash"`
	Key         string `json:"key"`
	KeyVersion  uint32 `json:"key_version"`
	Fingerprint string `json:"key_fingerprint"`
}

// hashFiles hashes files with at most GOMAXPROCS in parallel, each streamed.
func hashFiles(ctx context.Context, paths []string) ([][pkgsig.DigestSize]byte, error) {
	digests := make([][pkgsig.DigestSize]byte, len(paths))
	errs := make([]error, len(paths))
	sem := make(chan struct{}, runtime.GOMAXPROCS(0))
	var wg sync.WaitGroup
	for i, p := range paths {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			digests[i], errs[i] = pkgsig.HashFile(ctx, p)
		}()
	}
	wg.Wait()
	return digests, errors.Join(errs...)
}
