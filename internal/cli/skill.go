package cli

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"github.com/signerd/signerd/internal/errdefs"
	"github.com/signerd/signerd/internal/skill"
	"github.com/signerd/signerd/internal/skill/resolve"
)

// Size bounds for the skill documents a user names. A .schemapin.sig holds
// one manifest line per file (skill.LoadSignature allows 64 MiB); keys,
// discovery and revocation documents are a few hundred bytes, pin stores a
// line per pinned tool.
const (
	maxSkillSignatureSize = 64 << 20
	maxSkillDocSize       = 1 << 20
	maxPinStoreSize       = 16 << 20
)

// skillFetcherOptions are appended to the options of the resolve.Fetcher
// that skill verify uses for HTTPS and DNS. Tests set it to reach loopback
// servers (a test CA, host→address mappings, a resolver dialling a local
// DNS server); it is deliberately not a flag, so that no user can point
// verification at other roots by accident. Production leaves it nil: the
// system roots and the system resolver.
var skillFetcherOptions []resolve.Option

func newSkillCommand(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "skill",
		Short: "Sign and verify AgentSkills folders (SchemaPin .schemapin.sig)",
		Long: `Sign and verify skill folders in the SchemaPin format (.schemapin.sig, v1.3/v1.4).

A skill folder is canonicalized into a root hash over every regular file
(symlinks and .schemapin.sig files skipped); the signature covers that root
only. Every other field of .schemapin.sig (domain, expiry, lineage) is an
unauthenticated claim.

sign, discovery, revocation and dns-txt go through signerd (the key is in its
HSM). verify, canonicalize, tampered and chain need no daemon: they work from
files on disk, and verify can also fetch a domain's key from
https://DOMAIN/.well-known/schemapin.json.

Exit codes: 0 verified/clean, 1 verification failed (tampered, revoked, wrong
key, …), 2 bad usage or input (unreadable file, malformed document),
3 daemon unreachable or internal error, 4 permission denied.`,
	}
	cmd.AddCommand(
		newSkillVerifyCommand(g),
		newSkillCanonicalizeCommand(g),
		newSkillTamperedCommand(g),
		newSkillChainCommand(g),
	)
	return cmd
}

// skillDirArg checks that DIR is a directory: a typo must be exit 2, not a
// verification verdict about a folder that does not exist.
func skillDirArg(dir string) error {
	st, err := os.Stat(dir)
	if err != nil {
		return exitErr(ExitUsage, fmt.Errorf("cannot read skill folder %s: %w", dir, err))
	}
	if !st.IsDir() {
		return exitErr(ExitUsage, fmt.Errorf("%s is not a directory; give the skill folder (the one holding SKILL.md)", dir))
	}
	return nil
}

// loadSkillSignature reads and parses a .schemapin.sig: path when given,
// else DIR/.schemapin.sig. Any failure is bad input (exit 2): the commands
// using it (tampered, chain) cannot answer without a signature.
func loadSkillSignature(dir, path string) (*skill.Signature, error) {
	if path == "" {
		sig, err := skill.LoadSignature(dir)
		if err != nil {
			if errors.Is(err, errdefs.ErrNotFound) {
				return nil, exitErr(ExitUsage, fmt.Errorf("%s has no %s; sign it first or give --signature FILE", dir, skill.SignatureFilename))
			}
			return nil, exitErr(ExitUsage, fmt.Errorf("malformed %s: %w", filepath.Join(dir, skill.SignatureFilename), err))
		}
		return sig, nil
	}
	data, err := readSmallFile(path, maxSkillSignatureSize)
	if err != nil {
		return nil, err
	}
	sig, err := skill.ParseSignature(data)
	if err != nil {
		return nil, exitErr(ExitUsage, fmt.Errorf("malformed signature document %s: %w", path, err))
	}
	return sig, nil
}

// checkDomainFlag accepts a DNS name ("example.com", one trailing dot
// allowed) and refuses what is clearly a URL or host:port: the value is
// both where the key is fetched from and what the signature's domain claim
// is compared with, so "https://example.com" would only ever mismatch.
func checkDomainFlag(d string) error {
	if strings.TrimSpace(d) == "" {
		return exitErr(ExitUsage, fmt.Errorf("--domain is empty; give the signing domain, e.g. --domain example.com"))
	}
	if strings.ContainsAny(d, "/:@?#\\ \t") {
		return exitErr(ExitUsage, fmt.Errorf("--domain %q is not a domain name; give the bare name, e.g. --domain example.com (signctl adds https:// and /.well-known/schemapin.json)", d))
	}
	return nil
}
