package cli

import (
	"fmt"
	"os"
	"strings"

	"github.com/spf13/cobra"
	"golang.org/x/mod/sumdb/note"

	signerv1 "github.com/signerd/signerd/gen/signer/v1"
	"github.com/signerd/signerd/internal/errdefs"
	"github.com/signerd/signerd/internal/logproof"
	"github.com/signerd/signerd/internal/pkgsig"
)

func newLogCommand(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "log",
		Short: "Read and witness the verifiable log",
		Long: `signerd's audit log is also an RFC 9162 Merkle tree: every record, each
signature handed out among them, is a leaf, and the daemon publishes
checkpoints (tree size and root hash) as C2SP signed notes signed by an
Ed25519 log key in the HSM.

'log proof' fetches the proof that a signature was logged, which
'signctl verify --require-proof' checks offline. 'log monitor' is what a
witness runs: it accepts a new checkpoint only if it extends the last one
it accepted, and fails loudly on a rewritten or rolled-back log.`,
	}
	cmd.AddCommand(newLogPublicKeyCommand(g), newLogCheckpointCommand(g), newLogProofCommand(g), newLogMonitorCommand(g))
	return cmd
}

func newLogPublicKeyCommand(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "public-key",
		Short: "Print the log key as a note verifier key",
		Long: `Print the log key as a signed-note verifier key
(NAME+HEX8+BASE64(0x01 || Ed25519 public key)). Keep a copy away from the
signerd host: it is what 'verify --log-key' and 'log monitor --log-key' trust.`,
		Args: exactArgs(0, "no arguments"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, c, done, err := g.connect(cmd)
			if err != nil {
				return err
			}
			defer done()
			resp, err := c.Log.GetLogPublicKey(ctx, &signerv1.GetLogPublicKeyRequest{})
			if err != nil {
				return c.FromStatus(err)
			}
			if g.json() {
				return printJSON(g.stdout, map[string]string{"verifier_key": resp.GetVerifierKey(), "origin": resp.GetOrigin()})
			}
			writeRaw(g.stdout, resp.GetVerifierKey()+"\n")
			return nil
		},
	}
}

// logCheckpointJSON is the -o json shape of log checkpoint.
type logCheckpointJSON struct {
	Origin     string `json:"origin"`
	TreeSize   uint64 `json:"tree_size"`
	RootHash   []byte `json:"root_hash"`
	Checkpoint string `json:"checkpoint"`
}

func newLogCheckpointCommand(g *globals) *cobra.Command {
	var minSize uint64
	cmd := &cobra.Command{
		Use:   "checkpoint [--min-size N]",
		Short: "Print the latest checkpoint, a C2SP signed note",
		Args:  exactArgs(0, "no arguments"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, c, done, err := g.connect(cmd)
			if err != nil {
				return err
			}
			defer done()
			resp, err := c.Log.GetCheckpoint(ctx, &signerv1.GetCheckpointRequest{MinTreeSize: minSize})
			if err != nil {
				return c.FromStatus(err)
			}
			if g.json() {
				return printJSON(g.stdout, logCheckpointJSON{Origin: resp.GetOrigin(), TreeSize: resp.GetTreeSize(), RootHash: resp.GetRootHash(), Checkpoint: string(resp.GetCheckpoint())})
			}
			writeRaw(g.stdout, string(resp.GetCheckpoint()))
			return nil
		},
	}
	cmd.Flags().Uint64Var(&minSize, "min-size", 0, "a checkpoint of at least this many leaves (signed now if the latest is smaller)")
	return cmd
}

func newLogProofCommand(g *globals) *cobra.Command {
	var opts struct{ signature, out string }
	cmd := &cobra.Command{
		Use:   "proof FILE [--signature FILE.sig] [--out PATH]",
		Short: "Fetch the proof that FILE's signature is in the log",
		Long: `Fetch the proof bundle of FILE's signature (--signature, default FILE.sig):
the signature's audit record (the leaf), its inclusion proof and a signed
checkpoint the proof leads to. The bundle is written to --out (default
FILE.proof); with -o json it is also printed:
{"origin","leaf","leaf_index","tree_size","inclusion_proof","checkpoint"}.
'signctl verify FILE --trust-key PUB.pem --require-proof FILE.proof --log-key VKEY'
checks it offline.`,
		Example: `  signctl log proof libworkflow.so
  signctl log proof libworkflow.so --signature release.sig -o json > libworkflow.so.proof`,
		Args: exactArgs(1, "exactly one FILE"),
		RunE: func(cmd *cobra.Command, args []string) error {
			file := args[0]
			ctx, cancel := g.ctx(cmd.Context())
			defer cancel()
			digest, err := pkgsig.HashFile(ctx, file)
			if err != nil {
				return exitErr(ExitUsage, err)
			}
			doc, docPath, err := loadSignature(file, opts.signature)
			if err != nil {
				return err
			}
			if doc == nil {
				return exitErr(ExitUsage, fmt.Errorf("no signature: %s does not exist and --signature was not given", pkgsig.SidecarPath(file)))
			}
			sig, err := pkgsig.Parse(doc)
			if err != nil {
				return exitErr(ExitUsage, inDocument(err, docPath))
			}
			if sig.Digest != digest {
				return exitErr(ExitVerifyFail, fmt.Errorf("the signature is over %s, but %s hashes to %s: %w",
					pkgsig.HexDigest(sig.Digest[:]), file, pkgsig.HexDigest(digest[:]), errdefs.ErrPackageTampered))
			}
			c, err := g.dial()
			if err != nil {
				return err
			}
			defer c.Close()
			resp, err := c.Log.GetSignatureProof(ctx, &signerv1.GetSignatureProofRequest{Digest: digest[:], Signature: sig.Sig})
			if err != nil {
				return c.FromStatus(err)
			}
			b := bundleFromPB(resp.GetBundle())
			data, err := marshalBundle(b)
			if err != nil {
				return err
			}
			out := opts.out
			if out == "" {
				out = file + ".proof"
			}
			if err := writeFileAtomic(out, data, 0o644); err != nil {
				return exitErr(ExitUsage, err)
			}
			if g.json() {
				writeRaw(g.stdout, string(data))
				return nil
			}
			printf(g.stdout, "wrote %s: leaf %d of the log of %d leaves (%s)\n", out, b.LeafIndex, b.TreeSize, b.Origin)
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&opts.signature, "signature", "", "the detached signature (default FILE.sig)")
	f.StringVar(&opts.out, "out", "", "where to write the bundle (default FILE.proof)")
	return cmd
}

// bundleFromPB converts the wire bundle.
func bundleFromPB(p *signerv1.LogProofBundle) logproof.Bundle {
	return logproof.Bundle{
		Origin: p.GetOrigin(), Leaf: p.GetLeaf(), LeafIndex: p.GetLeafIndex(), TreeSize: p.GetTreeSize(),
		InclusionProof: p.GetInclusionProof(), Checkpoint: string(p.GetCheckpoint()),
	}
}

// marshalBundle is the bundle's file and -o json form: one JSON object in
// the field order of CONTRACT.md, inclusion_proof always an array.
func marshalBundle(b logproof.Bundle) ([]byte, error) {
	if b.InclusionProof == nil {
		b.InclusionProof = [][]byte{}
	}
	var sb strings.Builder
	if err := printJSON(&sb, b); err != nil {
		return nil, err
	}
	return []byte(sb.String()), nil
}

// maxLogKeyFile bounds a file holding a verifier key.
const maxLogKeyFile = 4 << 10

// readLogKey takes --log-key: the verifier key itself, or a file that
// holds it (as 'signctl log public-key > log.vkey' writes it).
func readLogKey(flag, value string) (note.Verifier, string, error) {
	key := value
	if st, err := os.Stat(value); err == nil && st.Mode().IsRegular() {
		b, err := readSmallFile(value, maxLogKeyFile)
		if err != nil {
			return nil, "", err
		}
		key = strings.TrimSpace(string(b))
	}
	v, err := logproof.Verifier(key)
	if err != nil {
		return nil, "", exitErr(ExitUsage, fmt.Errorf("--%s: not a note verifier key (NAME+HEX8+BASE64) nor a file holding one: %w", flag, err))
	}
	return v, strings.TrimSpace(key), nil
}
