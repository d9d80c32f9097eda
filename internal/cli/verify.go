package cli

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/signerd/signerd/internal/errdefs"
	"github.com/signerd/signerd/internal/pkgsig"
)

// verifyResult is the -o json shape of signctl verify (CONTRACT.md).
type verifyResult struct {
	File              string `json:"file"`
	Verified          bool   `json:"verified"`
	Reason            string `json:"reason"`
	Message           string `json:"message,omitempty"`
	Admitted          bool   `json:"admitted"`
	PackageHash       string `json:"package_hash"`
	SignerFingerprint string `json:"signer_fingerprint"`
	SignerKeyName     string `json:"signer_key_name,omitempty"`
	SignatureSource   string `json:"signature_source,omitempty"`
	Org               string `json:"org,omitempty"`
	Mode              string `json:"mode"`
	// Set when --require-proof was checked: where the signature is in the log.
	LogOrigin    string  `json:"log_origin,omitempty"`
	LogLeafIndex *uint64 `json:"log_leaf_index,omitempty"`
	LogTreeSize  uint64  `json:"log_tree_size,omitempty"`
}

func newVerifyCommand(g *globals) *cobra.Command {
	var opts struct {
		org          string
		signature    string
		trustKeys    []string
		requireProof string
		logKey       string
	}
	cmd := &cobra.Command{
		Use:   "verify FILE (--org ORG | --trust-key PUB.pem) [--signature PATH]",
		Short: "Verify a package's signature, online or offline",
		Long: `Verify a package's Cloacina signature.

Online (--org ORG): the daemon decides with the org's trusted keys, grants,
revocations and policy. The signature is --signature PATH, else FILE.sig if it
exists, else the signatures the daemon recorded for the file's digest.

Offline (--trust-key PUB.pem, repeatable): no daemon; the signature
(--signature PATH or FILE.sig) must be by one of the given keys.

With --require-proof BUNDLE --log-key VKEY (a bundle from 'signctl log
proof' and the log's verifier key, or a file holding it), the signature must
also be proven logged: the bundle's leaf is the log's record of this digest and
this signature, its inclusion proof leads to the checkpoint's root, and the
checkpoint is signed by the log key. This check is offline in both modes.

Exit 0 only when verified. Exit 1 when verification fails, including an
unsigned package that the org's policy admits (reason SIGNATURE_NOT_FOUND,
admitted true). Exit 2 for bad input, such as a malformed signature document
(reason MALFORMED_SIGNATURE).`,
		Example: `  signctl verify libworkflow.so --org acme
  signctl verify libworkflow.so --trust-key release.pub.pem -o json
  signctl verify libworkflow.so --trust-key release.pub.pem --require-proof libworkflow.so.proof --log-key log.vkey`,
		Args: exactArgs(1, "exactly one FILE"),
		RunE: func(cmd *cobra.Command, args []string) error {
			online, offline := opts.org != "", len(opts.trustKeys) > 0
			if online == offline {
				return exitErr(ExitUsage, fmt.Errorf("verify needs exactly one of --org ORG (online) or --trust-key PUB.pem (offline)"))
			}
			var proof *logProofCheck
			if opts.requireProof != "" || opts.logKey != "" {
				if err := required(cmd, "require-proof", "log-key"); err != nil {
					return err
				}
				var err error
				if proof, err = loadLogProofCheck(opts.requireProof, opts.logKey); err != nil {
					return err
				}
			}
			file := args[0]
			// Hashing is local work, bounded by the file and not by
			// --timeout, which is how long to wait for the daemon.
			digest, err := pkgsig.HashFile(cmd.Context(), file)
			if err != nil {
				return exitErr(localExit(err), err)
			}
			ctx, cancel := g.ctx(cmd.Context())
			defer cancel()
			doc, docPath, err := loadSignature(file, opts.signature)
			if err != nil {
				return err
			}
			res := verifyResult{File: file, PackageHash: pkgsig.HexDigest(digest[:]), Org: opts.org}
			var verr error
			if online {
				res.Mode = "online"
				verr = verifyOnline(ctx, g, &res, digest, doc)
			} else {
				res.Mode = "offline"
				verr = verifyOffline(opts.trustKeys, &res, digest, doc)
			}
			verr = inDocument(verr, docPath)
			if verr == nil && proof != nil {
				if verr = proof.check(&res, digest, doc); verr != nil {
					// The proof was required: without it nothing may
					// load the file, whatever the signature says.
					res.Admitted = false
				}
			}
			return report(g, &res, verr)
		},
	}
	f := cmd.Flags()
	f.StringVar(&opts.org, "org", "", "verify online, with this org's trust and policy")
	f.StringArrayVar(&opts.trustKeys, "trust-key", nil, "verify offline against this Ed25519 SPKI PEM public key (repeatable)")
	f.StringVar(&opts.signature, "signature", "", "the detached signature (default FILE.sig if present)")
	f.StringVar(&opts.requireProof, "require-proof", "", "also require this proof bundle ('signctl log proof') that the signature is in the log")
	f.StringVar(&opts.logKey, "log-key", "", "the log's note verifier key, or a file holding it (with --require-proof)")
	return cmd
}

// loadSignature returns the signature document and where it was read: the
// explicit path (which must be readable), else FILE.sig when it exists (or
// Cloacina's FILE..sig for a name without an extension:
// pkgsig.SidecarPaths), else nil.
func loadSignature(file, explicit string) (doc []byte, path string, err error) {
	if explicit != "" {
		doc, err := readSmallFile(explicit, 1<<20)
		return doc, explicit, err
	}
	for _, p := range pkgsig.SidecarPaths(file) {
		doc, err := readSmallFile(p, 1<<20)
		if err != nil {
			if _, statErr := os.Stat(p); errors.Is(statErr, fs.ErrNotExist) {
				continue
			}
			return nil, p, err
		}
		return doc, p, nil
	}
	return nil, "", nil
}

// inDocument names the signature file in a malformed-signature refusal, so
// that the reader knows which file to look at (FILE.sig, FILE..sig or
// --signature's).
func inDocument(err error, path string) error {
	v, ok := errdefs.AsVerification(err)
	if !ok || path == "" || v.Reason != errdefs.ReasonMalformedSignature || strings.Contains(v.Message, path) {
		return err
	}
	named := *v
	named.Message = path + ": " + v.Message
	return &named
}

func verifyOnline(ctx context.Context, g *globals, res *verifyResult, digest [pkgsig.DigestSize]byte, doc []byte) error {
	if doc != nil {
		// A signature file that exists is read here with the daemon's own
		// reader before anything is sent: an empty file would otherwise
		// travel as "no document" (proto3 bytes cannot tell empty from
		// absent) and the daemon would fall back to its records.
		if _, err := pkgsig.Parse(doc); err != nil {
			return err
		}
	}
	c, err := g.dial()
	if err != nil {
		return err
	}
	defer c.Close()
	v, err := c.Verify(ctx, res.Org, digest, doc)
	if err != nil {
		return err
	}
	res.SignerFingerprint = v.SignerFingerprint
	res.SignerKeyName = v.SignerKeyName
	res.SignatureSource = v.SignatureSource
	res.Admitted = true
	if v.Verified() {
		res.Verified = true
		return nil
	}
	// Unsigned, admitted by the org's policy: not verified.
	return &errdefs.VerificationError{
		Reason:      errdefs.ReasonSignatureNotFound,
		Message:     fmt.Sprintf("no signature found; org %q does not require signatures, so a loader may load it unverified", res.Org),
		PackageHash: res.PackageHash,
	}
}

func verifyOffline(trustKeyPaths []string, res *verifyResult, digest [pkgsig.DigestSize]byte, doc []byte) error {
	var keys []ed25519.PublicKey
	for _, p := range trustKeyPaths {
		pem, err := readSmallFile(p, 64<<10)
		if err != nil {
			return err
		}
		k, err := pkgsig.ParsePublicKeyPEM(pem)
		if err != nil {
			return exitErr(ExitUsage, fmt.Errorf("--trust-key %s: %w", p, err))
		}
		keys = append(keys, k)
	}
	if doc == nil {
		return &errdefs.VerificationError{Reason: errdefs.ReasonSignatureNotFound,
			Message: fmt.Sprintf("no signature: %s does not exist and --signature was not given", pkgsig.SidecarPath(res.File))}
	}
	sig, err := pkgsig.Parse(doc)
	if err != nil {
		return err
	}
	res.SignerFingerprint = sig.Fingerprint
	// Use the key the signature names, if it is among those given, so the
	// refusal is about the signature rather than the order of flags.
	key := keys[0]
	found := false
	for _, k := range keys {
		if pkgsig.Fingerprint(k) == sig.Fingerprint {
			key, found = k, true
			break
		}
	}
	if !found && len(keys) > 1 && sig.Digest == digest {
		fps := make([]string, len(keys))
		for i, k := range keys {
			fps[i] = pkgsig.Fingerprint(k)
		}
		return &errdefs.VerificationError{Reason: errdefs.ReasonUntrustedSigner, PackageHash: res.PackageHash, Fingerprint: sig.Fingerprint,
			Message: fmt.Sprintf("package signed by untrusted key %s (trusted keys are %s)", sig.Fingerprint, strings.Join(fps, ", "))}
	}
	if err := pkgsig.Check(digest, sig, key); err != nil {
		return err
	}
	res.Verified, res.Admitted, res.SignatureSource = true, true, "detached"
	return nil
}

// report prints the result and turns it into the exit code.
func report(g *globals, res *verifyResult, err error) error {
	if err != nil {
		v, ok := errdefs.AsVerification(err)
		if !ok {
			return err // not a verdict: usage, daemon or permission error
		}
		res.Verified = false
		res.Reason, res.Message = string(v.Reason), v.Message
		if v.Fingerprint != "" {
			res.SignerFingerprint = v.Fingerprint
		}
	}
	if g.json() {
		if perr := printJSON(g.stdout, res); perr != nil {
			return perr
		}
	} else if res.Verified {
		name := res.SignerKeyName
		if name != "" {
			name = " (" + name + ")"
		}
		logged := ""
		if res.LogLeafIndex != nil {
			logged = fmt.Sprintf("; logged as leaf %d of %s's checkpoint of %d", *res.LogLeafIndex, res.LogOrigin, res.LogTreeSize)
		}
		printf(g.stdout, "OK: %s verified, signed by %s%s%s\n", res.File, res.SignerFingerprint, name, logged)
	} else {
		admitted := ""
		if res.Admitted {
			admitted = " (admitted unverified by policy)"
		}
		printf(g.stderr, "FAILED: %s: %s: %s%s\n", res.File, res.Reason, res.Message, admitted)
	}
	switch {
	case err == nil:
		return nil
	case res.Reason == string(errdefs.ReasonMalformedSignature), res.Reason == string(errdefs.ReasonMalformedProof):
		return &exitError{code: ExitUsage, err: err, reported: true}
	default:
		return &exitError{code: ExitVerifyFail, err: err, reported: true}
	}
}
