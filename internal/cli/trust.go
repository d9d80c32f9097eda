package cli

import (
	"fmt"
	"io"
	"os"
	"strings"
	"syscall"
	"text/tabwriter"

	"github.com/spf13/cobra"

	signerv1 "github.com/signerd/signerd/gen/signer/v1"
)

func newTrustCommand(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "trust",
		Short: "Decide which keys each org trusts",
		Long: `An org (any identifier, e.g. a UUID) trusts keys by fingerprint. A grant makes a
parent org trust every key a child org trusts directly: one level, not
transitive. An org nobody configured trusts nothing.`,
	}
	cmd.AddCommand(newTrustAddCommand(g), newTrustRemoveCommand(g), newTrustGrantCommand(g),
		newTrustRevokeGrantCommand(g), newTrustListCommand(g))
	return cmd
}

type trustedJSON struct {
	Fingerprint  string `json:"fingerprint"`
	Algorithm    string `json:"algorithm"`
	KeyName      string `json:"key_name,omitempty"`
	ViaOrg       string `json:"via_org,omitempty"`
	TrustedAt    string `json:"trusted_at,omitempty"`
	PublicKeyPEM string `json:"public_key_pem"`
}

func toTrustedJSON(k *signerv1.TrustedKey) trustedJSON {
	t := trustedJSON{Fingerprint: k.GetFingerprint(), Algorithm: algorithmName(k.GetAlgorithm()), KeyName: k.GetKeyName(), ViaOrg: k.GetViaOrg(), PublicKeyPEM: k.GetPublicKeyPem()}
	if k.GetTrustedAt() != nil {
		t.TrustedAt = k.GetTrustedAt().AsTime().Format("2006-01-02T15:04:05Z07:00")
	}
	return t
}

func newTrustAddCommand(g *globals) *cobra.Command {
	var opts struct{ org, key, publicKey, name string }
	cmd := &cobra.Command{
		Use:   "add --org ORG (--key NAME | --public-key FILE.pem) [--name NAME]",
		Short: "Make an org trust a key",
		Example: `  signctl trust add --org acme --key release
  signctl trust add --org acme --public-key vendor.pub.pem --name vendor`,
		Args: exactArgs(0, "no arguments"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := required(cmd, "org"); err != nil {
				return err
			}
			req := &signerv1.AddTrustRequest{Org: opts.org, DisplayName: opts.name}
			switch {
			case opts.key != "" && opts.publicKey != "":
				return exitErr(ExitUsage, fmt.Errorf("give --key or --public-key, not both"))
			case opts.key != "":
				req.Key = &signerv1.AddTrustRequest_KeyName{KeyName: opts.key}
			case opts.publicKey != "":
				pem, err := readSmallFile(opts.publicKey, 64<<10)
				if err != nil {
					return err
				}
				req.Key = &signerv1.AddTrustRequest_PublicKeyPem{PublicKeyPem: string(pem)}
			default:
				return exitErr(ExitUsage, fmt.Errorf("trust add needs --key NAME or --public-key FILE.pem"))
			}
			ctx, c, done, err := g.connect(cmd)
			if err != nil {
				return err
			}
			defer done()
			resp, err := c.Trust.AddTrust(ctx, req)
			if err != nil {
				return c.FromStatus(err)
			}
			t := toTrustedJSON(resp.GetKey())
			if g.json() {
				return printJSON(g.stdout, t)
			}
			printf(g.stdout, "org %s now trusts %s key %s %s\n", opts.org, t.Algorithm, t.Fingerprint, t.KeyName)
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&opts.org, "org", "", "the org that trusts the key")
	f.StringVar(&opts.key, "key", "", "a signerd key, by name (its current version)")
	f.StringVar(&opts.publicKey, "public-key", "", "an SPKI PEM public key file (Ed25519 or ECDSA P-256)")
	f.StringVar(&opts.name, "name", "", "display name for a --public-key")
	return cmd
}

func newTrustRemoveCommand(g *globals) *cobra.Command {
	var opts struct{ org, fingerprint string }
	cmd := &cobra.Command{
		Use:   "remove --org ORG --fingerprint FP",
		Short: "Stop an org trusting a key",
		Long: `Stop an org trusting a key directly. Every signature by that key then fails
verification for the org with KEY_REVOKED (revocation of trust is retroactive),
unless the org still accepts the key through a grant: an org trusts what it
trusts directly and what every org it granted trusts directly. The answer then
names those grants; end them with 'signctl trust revoke-grant' or remove the
key from the granted orgs.`,
		Args: exactArgs(0, "no arguments"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := required(cmd, "org", "fingerprint"); err != nil {
				return err
			}
			ctx, c, done, err := g.connect(cmd)
			if err != nil {
				return err
			}
			defer done()
			resp, err := c.Trust.RemoveTrust(ctx, &signerv1.RemoveTrustRequest{Org: opts.org, Fingerprint: opts.fingerprint})
			if err != nil {
				return c.FromStatus(err)
			}
			via := resp.GetStillTrustedViaGrants()
			if g.json() {
				return printJSON(g.stdout, map[string]any{"org": opts.org, "removed": opts.fingerprint,
					"still_trusted": len(via) > 0, "still_trusted_via_grants": append([]string{}, via...)})
			}
			switch len(via) {
			case 0:
				printf(g.stdout, "org %s no longer trusts %s\n", opts.org, opts.fingerprint)
			case 1:
				printf(g.stdout, "org %s no longer trusts %s directly, but still accepts it through its grant of org %s\n", opts.org, opts.fingerprint, via[0])
			default:
				printf(g.stdout, "org %s no longer trusts %s directly, but still accepts it through its grants of orgs %s\n", opts.org, opts.fingerprint, strings.Join(via, ", "))
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&opts.org, "org", "", "the org")
	cmd.Flags().StringVar(&opts.fingerprint, "fingerprint", "", "the key's fingerprint (signctl trust list shows it)")
	return cmd
}

func newTrustGrantCommand(g *globals) *cobra.Command {
	var opts struct{ org, child string }
	cmd := &cobra.Command{
		Use:     "grant --org PARENT --child CHILD",
		Short:   "Make PARENT trust every key CHILD trusts directly",
		Example: "  signctl trust grant --org platform --child team-a",
		Args:    exactArgs(0, "no arguments"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := required(cmd, "org", "child"); err != nil {
				return err
			}
			ctx, c, done, err := g.connect(cmd)
			if err != nil {
				return err
			}
			defer done()
			if _, err := c.Trust.GrantTrust(ctx, &signerv1.GrantTrustRequest{Parent: opts.org, Child: opts.child}); err != nil {
				return c.FromStatus(err)
			}
			if g.json() {
				return printJSON(g.stdout, map[string]string{"parent": opts.org, "child": opts.child})
			}
			printf(g.stdout, "org %s now trusts the keys org %s trusts directly\n", opts.org, opts.child)
			return nil
		},
	}
	cmd.Flags().StringVar(&opts.org, "org", "", "the parent org (the verifier)")
	cmd.Flags().StringVar(&opts.child, "child", "", "the child org whose directly trusted keys are inherited")
	return cmd
}

func newTrustRevokeGrantCommand(g *globals) *cobra.Command {
	var opts struct{ org, child string }
	cmd := &cobra.Command{
		Use:   "revoke-grant --org PARENT --child CHILD",
		Short: "End a grant",
		Args:  exactArgs(0, "no arguments"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := required(cmd, "org", "child"); err != nil {
				return err
			}
			ctx, c, done, err := g.connect(cmd)
			if err != nil {
				return err
			}
			defer done()
			if _, err := c.Trust.RevokeGrant(ctx, &signerv1.RevokeGrantRequest{Parent: opts.org, Child: opts.child}); err != nil {
				return c.FromStatus(err)
			}
			if g.json() {
				return printJSON(g.stdout, map[string]string{"parent": opts.org, "child": opts.child, "revoked": "true"})
			}
			printf(g.stdout, "org %s no longer inherits org %s's keys\n", opts.org, opts.child)
			return nil
		},
	}
	cmd.Flags().StringVar(&opts.org, "org", "", "the parent org")
	cmd.Flags().StringVar(&opts.child, "child", "", "the child org")
	return cmd
}

func newTrustListCommand(g *globals) *cobra.Command {
	var org string
	cmd := &cobra.Command{
		Use:   "list --org ORG",
		Short: "List the keys an org trusts, directly and through grants",
		Args:  exactArgs(0, "no arguments"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := required(cmd, "org"); err != nil {
				return err
			}
			ctx, c, done, err := g.connect(cmd)
			if err != nil {
				return err
			}
			defer done()
			resp, err := c.Signer.ListTrusted(ctx, &signerv1.ListTrustedRequest{Org: org})
			if err != nil {
				return c.FromStatus(err)
			}
			keys := make([]trustedJSON, 0, len(resp.GetKeys()))
			for _, k := range resp.GetKeys() {
				keys = append(keys, toTrustedJSON(k))
			}
			granted := resp.GetGrantedOrgs()
			if granted == nil {
				granted = []string{}
			}
			if g.json() {
				return printJSON(g.stdout, map[string]any{"org": org, "require_signatures": resp.GetRequireSignatures(), "granted_orgs": granted, "keys": keys})
			}
			printf(g.stdout, "org %s (require_signatures=%t)\n", org, resp.GetRequireSignatures())
			if len(keys) == 0 {
				printf(g.stdout, "trusts no keys\n")
				return nil
			}
			tw := tabwriter.NewWriter(g.stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "FINGERPRINT\tALGORITHM\tNAME\tVIA")
			for _, k := range keys {
				via := "direct"
				if k.ViaOrg != "" {
					via = "grant from " + k.ViaOrg
				}
				printf(tw, "%s\t%s\t%s\t%s\n", k.Fingerprint, k.Algorithm, k.KeyName, via)
			}
			return tw.Flush()
		},
	}
	cmd.Flags().StringVar(&org, "org", "", "the org")
	return cmd
}

// readSmallFile reads a file the user named, with a size bound; failures are
// bad input (exit 2).
func readSmallFile(path string, limit int64) ([]byte, error) {
	// O_NONBLOCK: a FIFO (at FILE.sig, say) is refused below instead of
	// waiting for a writer forever; regular files ignore it.
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, exitErr(ExitUsage, fmt.Errorf("cannot read %s: %w", path, err))
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, exitErr(ExitUsage, fmt.Errorf("cannot read %s: %w", path, err))
	}
	if !st.Mode().IsRegular() {
		return nil, exitErr(ExitUsage, fmt.Errorf("%s is not a regular file", path))
	}
	if st.Size() > limit {
		return nil, exitErr(ExitUsage, fmt.Errorf("%s is %d bytes, more than the %d expected", path, st.Size(), limit))
	}
	b := make([]byte, st.Size())
	if _, err := io.ReadFull(f, b); err != nil {
		return nil, exitErr(ExitUsage, fmt.Errorf("cannot read %s: %w", path, err))
	}
	return b, nil
}
