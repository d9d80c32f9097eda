package cli

import (
	"fmt"
	"path/filepath"

	"github.com/spf13/cobra"
	"google.golang.org/protobuf/types/known/durationpb"

	signerv1 "github.com/signerd/signerd/gen/signer/v1"
	"github.com/signerd/signerd/internal/skill"
)

// addSkillDaemonCommands adds the skill commands that need the daemon:
// signing and exporting the public documents.
func addSkillDaemonCommands(parent *cobra.Command, g *globals) {
	parent.AddCommand(newSkillSignCommand(g), newSkillDiscoveryCommand(g), newSkillRevocationCommand(g), newSkillDNSTXTCommand(g))
}

func newSkillSignCommand(g *globals) *cobra.Command {
	var opts struct {
		key, domain, schemaVersion, previousHash, signerKid, skillName, digest string
		expiresIn                                                              string
	}
	cmd := &cobra.Command{
		Use:   "sign DIR --key NAME --domain DOMAIN [options]",
		Short: "Sign a skill folder (SchemaPin .schemapin.sig) with an HSM key",
		Long: `Sign a skill folder with an ECDSA P-256 key held in signerd's HSM.

signctl canonicalizes the folder locally (SchemaPin's canonical hash of every
file, symlinks and .schemapin.sig excluded), sends the root hash and file
manifest to the daemon, which signs inside the HSM, records what it signed
(root, domain, expiry, lineage, key) and returns the .schemapin.sig that
signctl writes into DIR atomically.

--digest sha256 (default) signs SHA-256(root) as the Python, JavaScript and
Rust SDKs do; --digest go signs the root itself as the Go SDK does.
signer_kid defaults to the key's fingerprint (sha256:<hex of SPKI DER>).`,
		Example: `  signctl skill sign ./my-skill --key skills --domain example.com --expires-in 720h`,
		Args:    exactArgs(1, "exactly one skill DIR"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := required(cmd, "key", "domain"); err != nil {
				return err
			}
			dir := args[0]
			conv, err := skill.ParseDigestConvention(opts.digest)
			if err != nil || conv == skill.DigestAny {
				return exitErr(ExitUsage, fmt.Errorf("--digest must be sha256 or go, not %q", opts.digest))
			}
			req := &signerv1.SignSkillRequest{
				KeyName: opts.key, Domain: opts.domain, SchemaVersion: opts.schemaVersion,
				PreviousHash: opts.previousHash, SignerKid: opts.signerKid, SkillName: opts.skillName,
				DigestConvention: signerv1.DigestConvention_DIGEST_CONVENTION_SHA256,
			}
			if conv == skill.DigestGo {
				req.DigestConvention = signerv1.DigestConvention_DIGEST_CONVENTION_GO
			}
			if opts.expiresIn != "" {
				d, err := parseDuration(opts.expiresIn)
				if err != nil || d <= 0 {
					return exitErr(ExitUsage, fmt.Errorf("--expires-in %q is not a positive duration like 720h or 30d", opts.expiresIn))
				}
				req.ExpiresIn = durationpb.New(d)
			}
			// Canonicalizing is local work, not bounded by --timeout
			// (how long to wait for the daemon).
			m, err := skill.Canonicalize(cmd.Context(), dir)
			if err != nil {
				return exitErr(localExit(err), err)
			}
			ctx, cancel := g.ctx(cmd.Context())
			defer cancel()
			if req.SkillName == "" {
				req.SkillName = skill.ParseSkillName(dir)
			}
			req.Root, req.FileManifest = m.Root[:], m.Files
			c, err := g.dial()
			if err != nil {
				return err
			}
			defer c.Close()
			resp, err := signSkill(ctx, c.Skills, req)
			if err != nil {
				return c.FromStatus(err)
			}
			if err := skill.WriteSignatureFile(dir, resp.GetSignatureDocument()); err != nil {
				return exitErr(ExitUsage, fmt.Errorf("write %s: %w", filepath.Join(dir, skill.SignatureFilename), err))
			}
			out := map[string]any{
				"dir": dir, "signature": filepath.Join(dir, skill.SignatureFilename), "skill_hash": m.SkillHash(),
				"skill_name": req.SkillName, "domain": opts.domain, "key": resp.GetKeyName(), "key_version": resp.GetKeyVersion(),
				"key_fingerprint": resp.GetKeyFingerprint(), "digest_convention": string(conv), "files": len(m.Files),
				"unsigned_entries": nonNil(m.Unsigned),
			}
			if g.json() {
				return printJSON(g.stdout, out)
			}
			printf(g.stdout, "signed skill %s (%s, %s) -> %s\nkey %s v%d %s, digest convention %s\n",
				req.SkillName, count(len(m.Files), "file"), m.SkillHash(), out["signature"], resp.GetKeyName(), resp.GetKeyVersion(), resp.GetKeyFingerprint(), conv)
			printUnsignedEntries(g.stdout, m.Unsigned)
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&opts.key, "key", "", "an ecdsa-p256 signing key")
	f.StringVar(&opts.domain, "domain", "", "the domain whose key signs (its .well-known/schemapin.json publishes the key)")
	f.StringVar(&opts.expiresIn, "expires-in", "", "write expires_at this long after signing (e.g. 720h, 30d)")
	f.StringVar(&opts.schemaVersion, "schema-version", "", "write schema_version")
	f.StringVar(&opts.previousHash, "previous-hash", "", "write previous_hash (the predecessor's skill_hash, sha256:HEX)")
	f.StringVar(&opts.signerKid, "signer-kid", "", "write signer_kid (default: the key's fingerprint)")
	f.StringVar(&opts.skillName, "skill-name", "", "write skill_name (default: SKILL.md front matter name, else the folder name)")
	f.StringVar(&opts.digest, "digest", "sha256", "ECDSA digest convention: sha256 (Python/JS/Rust) or go (Go SDK)")
	return cmd
}

func newSkillDiscoveryCommand(g *globals) *cobra.Command {
	var opts struct{ key, developer, contact string }
	cmd := &cobra.Command{
		Use:     "discovery --key NAME [--developer-name N] [--contact C]",
		Short:   "Print the .well-known/schemapin.json for a key",
		Long:    "Print the SchemaPin discovery document for a key: its current public key and\nthe fingerprints of its revoked versions. Publish it at\nhttps://DOMAIN/.well-known/schemapin.json.",
		Example: "  signctl skill discovery --key skills --developer-name 'Example Corp' > schemapin.json",
		Args:    exactArgs(0, "no arguments"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := required(cmd, "key"); err != nil {
				return err
			}
			ctx, c, done, err := g.connect(cmd)
			if err != nil {
				return err
			}
			defer done()
			resp, err := c.Skills.GetDiscovery(ctx, &signerv1.GetDiscoveryRequest{KeyName: opts.key, DeveloperName: opts.developer, Contact: opts.contact})
			if err != nil {
				return c.FromStatus(err)
			}
			_, err = g.stdout.Write(withNewline(resp.GetDocument()))
			return err
		},
	}
	cmd.Flags().StringVar(&opts.key, "key", "", "an ecdsa-p256 key")
	cmd.Flags().StringVar(&opts.developer, "developer-name", "", "developer_name to publish")
	cmd.Flags().StringVar(&opts.contact, "contact", "", "contact to publish")
	return cmd
}

func newSkillRevocationCommand(g *globals) *cobra.Command {
	var domain string
	cmd := &cobra.Command{
		Use:   "revocation --domain DOMAIN",
		Short: "Print the standalone revocation document of a domain",
		Long:  "Print the SchemaPin standalone revocation document for DOMAIN: every revoked\nversion of the ecdsa-p256 keys created with --org DOMAIN, with reason and time.\nPublish it at the revocation_endpoint your discovery document names.",
		Args:  exactArgs(0, "no arguments"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := required(cmd, "domain"); err != nil {
				return err
			}
			ctx, c, done, err := g.connect(cmd)
			if err != nil {
				return err
			}
			defer done()
			resp, err := c.Skills.GetRevocation(ctx, &signerv1.GetRevocationRequest{Domain: domain})
			if err != nil {
				return c.FromStatus(err)
			}
			_, err = g.stdout.Write(withNewline(resp.GetDocument()))
			return err
		},
	}
	cmd.Flags().StringVar(&domain, "domain", "", "the domain")
	return cmd
}

func newSkillDNSTXTCommand(g *globals) *cobra.Command {
	var key string
	cmd := &cobra.Command{
		Use:   "dns-txt --key NAME",
		Short: "Print the _schemapin TXT record value for a key",
		Long:  "Print the value to publish as the TXT record _schemapin.DOMAIN, which verifiers\nusing --dns cross-check against the discovery document's key.",
		Args:  exactArgs(0, "no arguments"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := required(cmd, "key"); err != nil {
				return err
			}
			ctx, c, done, err := g.connect(cmd)
			if err != nil {
				return err
			}
			defer done()
			resp, err := c.Skills.GetDNSTXT(ctx, &signerv1.GetDNSTXTRequest{KeyName: key})
			if err != nil {
				return c.FromStatus(err)
			}
			if g.json() {
				return printJSON(g.stdout, map[string]string{"key": key, "value": resp.GetValue()})
			}
			printf(g.stdout, "%s\n", resp.GetValue())
			return nil
		},
	}
	cmd.Flags().StringVar(&key, "key", "", "an ecdsa-p256 key")
	return cmd
}

func withNewline(b []byte) []byte {
	if len(b) > 0 && b[len(b)-1] != '\n' {
		return append(append([]byte{}, b...), '\n')
	}
	return b
}
