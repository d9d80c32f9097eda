package cli

import (
	"fmt"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	signerv1 "github.com/signerd/signerd/gen/signer/v1"
	"github.com/signerd/signerd/internal/errdefs"
)

func newKeyCommand(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "key",
		Short: "Create and inspect signing keys (generated inside the HSM)",
	}
	cmd.AddCommand(newKeyCreateCommand(g), newKeyListCommand(g), newKeyPublicCommand(g),
		newKeyRotateCommand(g), newKeyRevokeCommand(g), newKeyImportCommand(g))
	return cmd
}

func algorithmName(a signerv1.Algorithm) string {
	switch a {
	case signerv1.Algorithm_ALGORITHM_ED25519:
		return "ed25519"
	case signerv1.Algorithm_ALGORITHM_ECDSA_P256:
		return "ecdsa-p256"
	}
	return "unknown"
}

func parseAlgorithm(s string) (signerv1.Algorithm, error) {
	switch s {
	case "ed25519":
		return signerv1.Algorithm_ALGORITHM_ED25519, nil
	case "ecdsa-p256":
		return signerv1.Algorithm_ALGORITHM_ECDSA_P256, nil
	}
	return 0, exitErr(ExitUsage, fmt.Errorf("--algorithm must be ed25519 (packages) or ecdsa-p256 (skills), not %q", s))
}

// keyJSON is the -o json shape of a key.
type keyJSON struct {
	Name        string           `json:"name"`
	Org         string           `json:"org,omitempty"`
	Algorithm   string           `json:"algorithm"`
	Version     uint32           `json:"version"`
	Fingerprint string           `json:"fingerprint"`
	State       string           `json:"state"`
	CreatedAt   string           `json:"created_at,omitempty"`
	Versions    []keyVersionJSON `json:"versions"`
}

type keyVersionJSON struct {
	Version          uint32 `json:"version"`
	Fingerprint      string `json:"fingerprint"`
	State            string `json:"state"`
	CreatedAt        string `json:"created_at,omitempty"`
	RevokedAt        string `json:"revoked_at,omitempty"`
	RevocationReason string `json:"revocation_reason,omitempty"`
	PublicKeyPEM     string `json:"public_key_pem"`
	CKAID            string `json:"cka_id"`
}

func stateName(s signerv1.KeyState) string {
	return strings.ToLower(strings.TrimPrefix(s.String(), "KEY_STATE_"))
}

func toKeyJSON(k *signerv1.Key) keyJSON {
	out := keyJSON{Name: k.GetName(), Org: k.GetOrg(), Algorithm: algorithmName(k.GetAlgorithm()), State: "revoked"}
	if k.GetCreatedAt() != nil {
		out.CreatedAt = k.GetCreatedAt().AsTime().Format("2006-01-02T15:04:05Z07:00")
	}
	for _, v := range k.GetVersions() {
		vj := keyVersionJSON{Version: v.GetVersion(), Fingerprint: v.GetFingerprint(), State: stateName(v.GetState()), PublicKeyPEM: v.GetPublicKeyPem(), CKAID: v.GetCkaId()}
		if v.GetCreatedAt() != nil {
			vj.CreatedAt = v.GetCreatedAt().AsTime().Format("2006-01-02T15:04:05Z07:00")
		}
		if v.GetRevokedAt() != nil {
			vj.RevokedAt = v.GetRevokedAt().AsTime().Format("2006-01-02T15:04:05Z07:00")
			vj.RevocationReason = reasonName(v.GetRevocationReason())
		}
		out.Versions = append(out.Versions, vj)
	}
	// The current version is the newest active one.
	for i := len(out.Versions) - 1; i >= 0; i-- {
		if out.Versions[i].State == "active" {
			out.Version, out.Fingerprint, out.State = out.Versions[i].Version, out.Versions[i].Fingerprint, "active"
			break
		}
	}
	if out.Version == 0 && len(out.Versions) > 0 {
		last := out.Versions[len(out.Versions)-1]
		out.Version, out.Fingerprint = last.Version, last.Fingerprint
	}
	return out
}

func newKeyCreateCommand(g *globals) *cobra.Command {
	var opts struct{ algorithm, org string }
	cmd := &cobra.Command{
		Use:   "create NAME --algorithm ed25519|ecdsa-p256 [--org ORG]",
		Short: "Generate a new key pair inside the HSM",
		Long: `Generate a new key pair inside the HSM. The private key is created sensitive
and non-extractable and never leaves the token; signerd records its public key
and fingerprint. Use ed25519 for Cloacina packages, ecdsa-p256 for SchemaPin
skills. Creating a key does not make any org trust it: see 'signctl trust add'.`,
		Example: "  signctl key create release --algorithm ed25519 --org acme",
		Args:    exactArgs(1, "exactly one key NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			alg, err := parseAlgorithm(opts.algorithm)
			if err != nil {
				return err
			}
			ctx, c, done, err := g.connect(cmd)
			if err != nil {
				return err
			}
			defer done()
			resp, err := c.Keys.CreateKey(ctx, &signerv1.CreateKeyRequest{Name: args[0], Algorithm: alg, Org: opts.org})
			if err != nil {
				return c.FromStatus(err)
			}
			k := toKeyJSON(resp.GetKey())
			if g.json() {
				return printJSON(g.stdout, k)
			}
			printf(g.stdout, "created key %s (%s) version %d\nfingerprint %s\n", k.Name, k.Algorithm, k.Version, k.Fingerprint)
			return nil
		},
	}
	cmd.Flags().StringVar(&opts.algorithm, "algorithm", "ed25519", "ed25519 (Cloacina packages) or ecdsa-p256 (SchemaPin skills)")
	cmd.Flags().StringVar(&opts.org, "org", "", "org that owns the key (informational)")
	return cmd
}

func newKeyListCommand(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "list",
		Short: "List signing keys",
		Args:  exactArgs(0, "no arguments"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, c, done, err := g.connect(cmd)
			if err != nil {
				return err
			}
			defer done()
			resp, err := c.Keys.ListKeys(ctx, &signerv1.ListKeysRequest{})
			if err != nil {
				return c.FromStatus(err)
			}
			keys := make([]keyJSON, 0, len(resp.GetKeys()))
			for _, k := range resp.GetKeys() {
				keys = append(keys, toKeyJSON(k))
			}
			if g.json() {
				return printJSON(g.stdout, keys)
			}
			if len(keys) == 0 {
				printf(g.stdout, "no keys (create one with: signctl key create NAME --algorithm ed25519)\n")
				return nil
			}
			tw := tabwriter.NewWriter(g.stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "NAME\tALGORITHM\tVERSION\tSTATE\tORG\tFINGERPRINT")
			for _, k := range keys {
				printf(tw, "%s\t%s\t%d\t%s\t%s\t%s\n", k.Name, k.Algorithm, k.Version, k.State, k.Org, k.Fingerprint)
			}
			return tw.Flush()
		},
	}
}

func newKeyPublicCommand(g *globals) *cobra.Command {
	var version uint32
	cmd := &cobra.Command{
		Use:     "public NAME [--version N]",
		Short:   "Print a key's public key as SPKI PEM",
		Long:    "Print the public key of a key's current version (or --version N) as SPKI PEM,\nthe form 'signctl verify --trust-key' and 'openssl pkey -pubin' read.",
		Example: "  signctl key public release > release.pub.pem",
		Args:    exactArgs(1, "exactly one key NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx, c, done, err := g.connect(cmd)
			if err != nil {
				return err
			}
			defer done()
			resp, err := c.Keys.GetKey(ctx, &signerv1.GetKeyRequest{Name: args[0]})
			if err != nil {
				return c.FromStatus(err)
			}
			k := toKeyJSON(resp.GetKey())
			want := k.Version
			if cmd.Flags().Changed("version") {
				want = version
			}
			for _, v := range k.Versions {
				if v.Version == want {
					if g.json() {
						return printJSON(g.stdout, map[string]any{"name": k.Name, "version": v.Version, "fingerprint": v.Fingerprint, "public_key_pem": v.PublicKeyPEM})
					}
					writeRaw(g.stdout, v.PublicKeyPEM)
					return nil
				}
			}
			return exitErr(ExitUsage, fmt.Errorf("key %q has no version %d: %w", k.Name, want, errdefs.ErrNotFound))
		},
	}
	cmd.Flags().Uint32Var(&version, "version", 0, "key version (default: the current one)")
	return cmd
}
