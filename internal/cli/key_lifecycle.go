package cli

import (
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	signerv1 "github.com/signerd/signerd/gen/signer/v1"
)

func newKeyRotateCommand(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "rotate NAME",
		Short: "Make a new version of a key in the HSM",
		Long: `Generate a new key pair in the HSM as the next version of NAME. The new version
signs from now on; older versions stay valid for verifying what they signed.
Every org that trusted the previous version trusts the new one too. To stop
an old version, revoke the key or remove the org's trust in its fingerprint.`,
		Args: exactArgs(1, "exactly one key NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx, c, done, err := g.connect(cmd)
			if err != nil {
				return err
			}
			defer done()
			resp, err := c.Keys.RotateKey(ctx, &signerv1.RotateKeyRequest{Name: args[0]})
			if err != nil {
				return c.FromStatus(err)
			}
			k := toKeyJSON(resp.GetKey())
			if g.json() {
				return printJSON(g.stdout, map[string]any{"key": k, "trust_propagated_to": nonNil(resp.GetTrustPropagatedTo())})
			}
			printf(g.stdout, "rotated key %s to version %d\nfingerprint %s\n", k.Name, k.Version, k.Fingerprint)
			if orgs := resp.GetTrustPropagatedTo(); len(orgs) > 0 {
				printf(g.stdout, "orgs now trusting the new version too: %s\n", strings.Join(orgs, ", "))
			}
			return nil
		},
	}
}

var revocationReasons = map[string]signerv1.RevocationReason{
	"key_compromise":         signerv1.RevocationReason_REVOCATION_REASON_KEY_COMPROMISE,
	"superseded":             signerv1.RevocationReason_REVOCATION_REASON_SUPERSEDED,
	"cessation_of_operation": signerv1.RevocationReason_REVOCATION_REASON_CESSATION_OF_OPERATION,
	"privilege_withdrawn":    signerv1.RevocationReason_REVOCATION_REASON_PRIVILEGE_WITHDRAWN,
}

// reasonName is r as the flag and the JSON spell it (key_compromise).
func reasonName(r signerv1.RevocationReason) string {
	return strings.ToLower(strings.TrimPrefix(r.String(), "REVOCATION_REASON_"))
}

func newKeyRevokeCommand(g *globals) *cobra.Command {
	var reason string
	cmd := &cobra.Command{
		Use:   "revoke NAME --reason key_compromise|superseded|cessation_of_operation|privilege_withdrawn",
		Short: "Revoke a key: it stops signing at once",
		Long: `Revoke every version of a key. It can no longer sign, from the next request on.

key_compromise: every signature the key ever made fails verification
(KEY_REVOKED): an attacker could have made any of them.
superseded, cessation_of_operation, privilege_withdrawn: signatures signerd
recorded before the revocation stay valid; later ones, and detached signatures
signerd has no record of, fail with KEY_REVOKED.

A revoked key can be revoked again only to escalate it to key_compromise
(when a compromise comes to light after a routine revocation): from then on
its earlier signatures fail too. Any other change of reason is refused.

Revocations appear in the key's SchemaPin discovery document (revoked_keys)
and in 'signctl skill revocation'.`,
		Args: exactArgs(1, "exactly one key NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := required(cmd, "reason"); err != nil {
				return err
			}
			r, ok := revocationReasons[reason]
			if !ok {
				return exitErr(ExitUsage, fmt.Errorf("--reason must be key_compromise, superseded, cessation_of_operation or privilege_withdrawn, not %q", reason))
			}
			ctx, c, done, err := g.connect(cmd)
			if err != nil {
				return err
			}
			defer done()
			resp, err := c.Keys.RevokeKey(ctx, &signerv1.RevokeKeyRequest{Name: args[0], Reason: r})
			if err != nil {
				return c.FromStatus(err)
			}
			k := toKeyJSON(resp.GetKey())
			var from string
			if r := resp.GetEscalatedFrom(); r != signerv1.RevocationReason_REVOCATION_REASON_UNSPECIFIED {
				from = reasonName(r)
			}
			if g.json() {
				return printJSON(g.stdout, struct {
					keyJSON
					EscalatedFrom string `json:"escalated_from,omitempty"`
				}{k, from})
			}
			if from != "" {
				// Said even when another revocation committed first:
				// what was recorded is an escalation.
				printf(g.stdout, "escalated key %s's revocation from %s to %s: the signatures it made before its revocation now fail too\n", k.Name, from, reason)
				return nil
			}
			printf(g.stdout, "revoked key %s (%s): it can no longer sign\n", k.Name, reason)
			return nil
		},
	}
	cmd.Flags().StringVar(&reason, "reason", "", "key_compromise, superseded, cessation_of_operation or privilege_withdrawn")
	return cmd
}

func newKeyImportCommand(g *globals) *cobra.Command {
	var opts struct{ algorithm, privateKey, org string }
	cmd := &cobra.Command{
		Use:   "import NAME --algorithm ed25519|ecdsa-p256 --private-key FILE [--org ORG]",
		Short: "Move an existing private key into the HSM",
		Long: `Import an existing private key into the HSM, where it is created sensitive and
non-extractable, so the fingerprint deployed loaders already trust (Cloacina)
or SchemaPin verifiers have pinned survives the move.

ed25519: Cloacina's signing key, the raw 32-byte seed, or a PKCS#8 PEM.
ecdsa-p256: a SchemaPin private key, PKCS#8 or SEC1 PEM.

The file is read, sent over the socket and handed to the token; signerd
writes it nowhere. Delete the file afterwards: the HSM copy cannot be read
out again.`,
		Example: "  signctl key import release --algorithm ed25519 --private-key release.seed",
		Args:    exactArgs(1, "exactly one key NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := required(cmd, "private-key"); err != nil {
				return err
			}
			alg, err := parseAlgorithm(opts.algorithm)
			if err != nil {
				return err
			}
			material, err := readSmallFile(opts.privateKey, 64<<10)
			if err != nil {
				return err
			}
			defer clear(material)
			ctx, c, done, err := g.connect(cmd)
			if err != nil {
				return err
			}
			defer done()
			resp, err := c.Keys.ImportKey(ctx, &signerv1.ImportKeyRequest{Name: args[0], Algorithm: alg, Org: opts.org, PrivateKey: material})
			if err != nil {
				return c.FromStatus(err)
			}
			k := toKeyJSON(resp.GetKey())
			if g.json() {
				return printJSON(g.stdout, k)
			}
			printf(g.stdout, "imported key %s (%s) into the HSM\nfingerprint %s\n", k.Name, k.Algorithm, k.Fingerprint)
			return nil
		},
	}
	cmd.Flags().StringVar(&opts.algorithm, "algorithm", "ed25519", "ed25519 or ecdsa-p256")
	cmd.Flags().StringVar(&opts.privateKey, "private-key", "", "the private key file")
	cmd.Flags().StringVar(&opts.org, "org", "", "org that owns the key (informational)")
	return cmd
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}
