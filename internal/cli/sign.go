package cli

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

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
			ctx, cancel := g.ctx(cmd.Context())
			defer cancel()
			// Hash everything first: a missing or unreadable file fails the
			// command before anything is signed.
			digests := make([][pkgsig.DigestSize]byte, len(args))
			for i, path := range args {
				d, err := pkgsig.HashFile(ctx, path)
				if err != nil {
					return exitErr(ExitUsage, err)
				}
				digests[i] = d
			}
			c, err := g.dial()
			if err != nil {
				return err
			}
			defer c.Close()
			type result struct {
				File        string `json:"file"`
				Signature   string `json:"signature"`
				PackageHash string `json:"package_hash"`
				Key         string `json:"key"`
				KeyVersion  uint32 `json:"key_version"`
				Fingerprint string `json:"key_fingerprint"`
			}
			var results []result
			for i, path := range args {
				resp, err := c.Signer.Sign(ctx, &signerv1.SignRequest{KeyName: opts.key, Digest: digests[i][:], ArtifactName: filepath.Base(path)})
				if err != nil {
					return c.FromStatus(err)
				}
				out := opts.out
				if out == "" {
					out = pkgsig.SidecarPath(path)
				}
				if err := writeFileAtomic(out, resp.GetSignatureDocument(), 0o644); err != nil {
					if errors.Is(err, os.ErrPermission) || errors.Is(err, os.ErrNotExist) {
						return exitErr(ExitUsage, err)
					}
					return exitErr(ExitDaemon, err)
				}
				r := result{File: path, Signature: out, PackageHash: pkgsig.HexDigest(digests[i][:]), Key: resp.GetKeyName(), KeyVersion: resp.GetKeyVersion(), Fingerprint: resp.GetKeyFingerprint()}
				results = append(results, r)
				if !g.json() {
					printf(g.stdout, "signed %s -> %s (key %s v%d, fingerprint %s)\n", path, out, r.Key, r.KeyVersion, r.Fingerprint)
				}
			}
			if g.json() {
				if len(results) == 1 {
					return printJSON(g.stdout, results[0])
				}
				return printJSON(g.stdout, results)
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&opts.key, "key", "", "the signing key's name (ed25519)")
	cmd.Flags().StringVar(&opts.out, "out", "", "where to write the signature (default FILE.sig)")
	return cmd
}
