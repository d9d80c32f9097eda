package cli

import (
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/spf13/cobra"

	"github.com/signerd/signerd/internal/skill"
)

// skillCanonicalOutput is the -o json shape of signctl skill canonicalize.
type skillCanonicalOutput struct {
	Dir       string `json:"dir"`
	Root      string `json:"root"`
	SkillHash string `json:"skill_hash"`
	FileCount int    `json:"file_count"`
	// FileManifest is upstream's file_manifest: path → "sha256:" +
	// hex(SHA-256(path bytes || content)), keys in byte order.
	FileManifest map[string]string `json:"file_manifest"`
	// Skipped are entries neither regular files, directories nor
	// symlinks (FIFOs, sockets, devices), never opened.
	Skipped []string `json:"skipped"`
	// Unsigned are every entry a signature would not cover: symlinks,
	// the Skipped ones, .schemapin.sig files below the top level.
	Unsigned []string `json:"unsigned_entries"`
}

func newSkillCanonicalizeCommand(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "canonicalize DIR",
		Short: "Print a skill folder's root hash and file manifest",
		Long: `Canonicalize a skill folder as SchemaPin does and print its root hash, the
skill_hash a signer writes ("sha256:" + hex(root)) and the file manifest.

Every regular file is included, dotfiles and empty files too; symlinks and
files named .schemapin.sig (at any depth) are skipped, and so are FIFOs,
sockets and devices, which are listed as skipped. Paths are sorted by their
UTF-8 bytes. Each manifest value is SHA-256 over the path bytes followed by
the file's bytes, so it is not the sha256sum of the file. The root is SHA-256
over the concatenated hex digests; it is the only thing a signature covers.

Nothing is written. Exit 2 when DIR cannot be read, holds no signable file,
or has a file name that is not valid UTF-8.`,
		Example: `  signctl skill canonicalize ./my-skill
  signctl skill canonicalize ./my-skill -o json | jq -r .root`,
		Args: exactArgs(1, "exactly one skill folder DIR"),
		RunE: func(cmd *cobra.Command, args []string) error {
			dir := args[0]
			if err := skillDirArg(dir); err != nil {
				return err
			}
			// Local work only: --timeout (the daemon's) does not bound it.
			ctx := cmd.Context()
			m, err := skill.Canonicalize(ctx, dir)
			if err != nil {
				if ctx.Err() != nil {
					return err
				}
				return exitErr(ExitUsage, fmt.Errorf("cannot canonicalize %s: %w", dir, err))
			}
			out := skillCanonicalOutput{Dir: dir, Root: m.RootHex(), SkillHash: m.SkillHash(),
				FileCount: len(m.Files), FileManifest: m.Files, Skipped: m.Skipped, Unsigned: m.Unsigned}
			if out.Skipped == nil {
				out.Skipped = []string{}
			}
			if out.Unsigned == nil {
				out.Unsigned = []string{}
			}
			if g.json() {
				return printJSON(g.stdout, out)
			}
			printf(g.stdout, "root:       %s\nskill_hash: %s\nfiles:      %d\n", out.Root, out.SkillHash, out.FileCount)
			for _, p := range m.Paths() {
				printf(g.stdout, "%s  %s\n", m.Files[p], p)
			}
			for _, p := range out.Skipped {
				printf(g.stdout, "skipped (not a regular file or directory): %s\n", p)
			}
			printUnsignedEntries(g.stdout, m.Unsigned)
			return nil
		},
	}
}

// skillTamperedOutput is the -o json shape of signctl skill tampered.
type skillTamperedOutput struct {
	Dir   string `json:"dir"`
	Clean bool   `json:"clean"`
	skill.TamperReport
	// Unsigned are the folder's entries no signature covers (symlinks,
	// special files, nested .schemapin.sig): not a difference, since
	// SchemaPin leaves them out, but nothing vouches for them either.
	Unsigned []string `json:"unsigned_entries"`
}

func newSkillTamperedCommand(g *globals) *cobra.Command {
	var opts struct{ signature string }
	cmd := &cobra.Command{
		Use:   "tampered DIR [--signature FILE]",
		Short: "List files modified, added or removed since a skill was signed",
		Long: `Compare a skill folder with the file manifest of its .schemapin.sig (or
--signature FILE) and list the files that were modified, added or removed.

The manifest is a claim of the signature document, not covered by the
signature: use this to explain why signctl skill verify failed, not to decide
whether to trust a folder.

Exit 0 when nothing differs, 1 when something does, 2 when the folder or the
signature document cannot be read or is malformed.`,
		Example: `  signctl skill tampered ./my-skill
  signctl skill tampered ./my-skill --signature release/my-skill.schemapin.sig -o json`,
		Args: exactArgs(1, "exactly one skill folder DIR"),
		RunE: func(cmd *cobra.Command, args []string) error {
			dir := args[0]
			if err := skillDirArg(dir); err != nil {
				return err
			}
			sig, err := loadSkillSignature(dir, opts.signature)
			if err != nil {
				return err
			}
			// Local work only: --timeout (the daemon's) does not bound it.
			ctx := cmd.Context()
			m, err := skill.Canonicalize(ctx, dir)
			if err != nil {
				if ctx.Err() != nil {
					return err
				}
				return exitErr(ExitUsage, fmt.Errorf("cannot canonicalize %s: %w", dir, err))
			}
			rep := skill.DetectTamperedFiles(m.Files, sig.FileManifest)
			out := skillTamperedOutput{Dir: dir, Clean: rep.Clean(), TamperReport: rep, Unsigned: m.Unsigned}
			if out.Unsigned == nil {
				out.Unsigned = []string{}
			}
			if g.json() {
				if err := printJSON(g.stdout, out); err != nil {
					return err
				}
			} else if out.Clean {
				printf(g.stdout, "OK: %s matches its signed manifest (%s)\n", dir, count(len(sig.FileManifest), "file"))
			} else {
				printf(g.stdout, "%s differs from its signed manifest:\n", dir)
				for _, l := range []struct {
					what  string
					paths []string
				}{{"modified", rep.Modified}, {"added", rep.Added}, {"removed", rep.Removed}} {
					for _, p := range l.paths {
						printf(g.stdout, "  %-9s %s\n", l.what, p)
					}
				}
			}
			if !g.json() {
				printUnsignedEntries(g.stdout, m.Unsigned)
			}
			if !out.Clean {
				return &exitError{code: ExitVerifyFail, reported: true,
					err: fmt.Errorf("%s: %d modified, %d added, %d removed", dir, len(rep.Modified), len(rep.Added), len(rep.Removed))}
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&opts.signature, "signature", "", "the signature document (default DIR/.schemapin.sig)")
	return cmd
}

// skillChainOutput is the -o json shape of signctl skill chain.
type skillChainOutput struct {
	Current           string `json:"current"`
	Previous          string `json:"previous"`
	Linked            bool   `json:"linked"`
	PreviousHash      string `json:"previous_hash"`
	PreviousSkillHash string `json:"previous_skill_hash"`
	ErrorCode         string `json:"error_code,omitempty"`
	ErrorMessage      string `json:"error_message,omitempty"`
}

func newSkillChainCommand(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "chain CURRENT.sig PREVIOUS.sig",
		Short: "Check that a skill signature names its predecessor (previous_hash)",
		Long: `Check the lineage of two skill signatures: CURRENT's previous_hash must be set
and equal PREVIOUS's skill_hash, string for string (SchemaPin v1.4
VerifyChain). Either argument may also be a skill folder, meaning its
.schemapin.sig.

No cryptography is involved and both fields are unauthenticated claims:
verify both signatures with signctl skill verify first.

Exit 0 when linked, 1 when not (error_code no_previous_hash or mismatch),
2 when a document cannot be read or is malformed.`,
		Example: `  signctl skill chain ./my-skill/.schemapin.sig releases/v1/.schemapin.sig
  signctl skill chain ./my-skill releases/v1 -o json`,
		Args: exactArgs(2, "CURRENT.sig and PREVIOUS.sig"),
		RunE: func(cmd *cobra.Command, args []string) error {
			cur, err := loadChainSignature(args[0])
			if err != nil {
				return err
			}
			prev, err := loadChainSignature(args[1])
			if err != nil {
				return err
			}
			out := skillChainOutput{Current: args[0], Previous: args[1], PreviousHash: cur.PreviousHash, PreviousSkillHash: prev.SkillHash}
			cerr := skill.VerifyChain(cur, prev)
			var ce *skill.ChainError
			switch {
			case cerr == nil:
				out.Linked = true
			case errors.As(cerr, &ce):
				out.ErrorCode, out.ErrorMessage = string(ce.Kind), ce.Error()
			default:
				return exitErr(ExitUsage, cerr)
			}
			if g.json() {
				if err := printJSON(g.stdout, out); err != nil {
					return err
				}
			} else if out.Linked {
				printf(g.stdout, "OK: %s follows %s (previous_hash %s)\n", args[0], args[1], cur.PreviousHash)
			} else {
				printf(g.stderr, "FAILED: %s does not follow %s: %s: %s\n", args[0], args[1], out.ErrorCode, out.ErrorMessage)
			}
			if cerr != nil {
				return &exitError{code: ExitVerifyFail, err: cerr, reported: true}
			}
			return nil
		},
	}
}

// loadChainSignature reads a signature document, or DIR/.schemapin.sig
// when path is a folder.
func loadChainSignature(path string) (*skill.Signature, error) {
	if st, err := os.Stat(path); err == nil && st.IsDir() {
		return loadSkillSignature(path, "")
	}
	return loadSkillSignature("", path)
}

// printUnsignedEntries lists, in text output, the folder's entries that no
// signature covers (skill.Manifest.Unsigned).
func printUnsignedEntries(w io.Writer, paths []string) {
	if len(paths) == 0 {
		return
	}
	printf(w, "not covered by a signature (symlinks and nested %s, which SchemaPin leaves out, and FIFOs, sockets or devices, which signerd never opens: they can change or be added without breaking it):\n", skill.SignatureFilename)
	for _, p := range paths {
		printf(w, "  unsigned: %s\n", p)
	}
}
