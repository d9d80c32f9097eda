package cli

import (
	"github.com/spf13/cobra"

	signerv1 "github.com/signerd/signerd/gen/signer/v1"
)

func newPolicyCommand(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "policy",
		Short: "Set and show each org's verification policy",
	}
	cmd.AddCommand(newPolicySetCommand(g), newPolicyGetCommand(g))
	return cmd
}

func newPolicySetCommand(g *globals) *cobra.Command {
	var opts struct {
		org     string
		require bool
	}
	cmd := &cobra.Command{
		Use:   "set --org ORG --require-signatures=true|false",
		Short: "Set whether an org requires signatures",
		Long: `Set whether an org requires signatures. With --require-signatures=false (the
default, as in Cloacina) a loader may load an unsigned artifact and is told it
was not verified; with true an unsigned artifact is refused. A present but bad
signature is refused either way.`,
		Example: "  signctl policy set --org acme --require-signatures=true",
		Args:    exactArgs(0, "no arguments"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := required(cmd, "org", "require-signatures"); err != nil {
				return err
			}
			ctx, c, done, err := g.connect(cmd)
			if err != nil {
				return err
			}
			defer done()
			resp, err := c.Trust.SetPolicy(ctx, &signerv1.SetPolicyRequest{Org: opts.org, Policy: &signerv1.Policy{RequireSignatures: opts.require}})
			if err != nil {
				return c.FromStatus(err)
			}
			if g.json() {
				return printJSON(g.stdout, map[string]any{"org": opts.org, "require_signatures": resp.GetPolicy().GetRequireSignatures()})
			}
			printf(g.stdout, "org %s: require_signatures=%t\n", opts.org, resp.GetPolicy().GetRequireSignatures())
			return nil
		},
	}
	cmd.Flags().StringVar(&opts.org, "org", "", "the org")
	cmd.Flags().BoolVar(&opts.require, "require-signatures", false, "refuse unsigned artifacts")
	return cmd
}

func newPolicyGetCommand(g *globals) *cobra.Command {
	var org string
	cmd := &cobra.Command{
		Use:   "get --org ORG",
		Short: "Show an org's policy",
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
			resp, err := c.Trust.GetPolicy(ctx, &signerv1.GetPolicyRequest{Org: org})
			if err != nil {
				return c.FromStatus(err)
			}
			if g.json() {
				return printJSON(g.stdout, map[string]any{"org": org, "require_signatures": resp.GetPolicy().GetRequireSignatures()})
			}
			printf(g.stdout, "org %s: require_signatures=%t\n", org, resp.GetPolicy().GetRequireSignatures())
			return nil
		},
	}
	cmd.Flags().StringVar(&org, "org", "", "the org")
	return cmd
}
