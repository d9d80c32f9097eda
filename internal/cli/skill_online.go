package cli

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	signerv1 "github.com/signerd/signerd/gen/signer/v1"
	"github.com/signerd/signerd/internal/errdefs"
	"github.com/signerd/signerd/internal/skill"
)

// keySourceDaemon: the key is the one signerd signed the skill with.
const keySourceDaemon = "signerd"

// runSkillVerifyOnline verifies through the daemon (--online): the folder
// is canonicalized here, the daemon checks the signature with the key it
// signed with and compares the document's unauthenticated metadata with its
// own record of what it signed.
func runSkillVerifyOnline(cmd *cobra.Command, g *globals, opts *skillVerifyOpts, dir string) error {
	for _, f := range []string{"public-key", "discovery", "revocation", "pin-store", "dns-txt", "dns", "tool-id"} {
		if cmd.Flags().Changed(f) {
			return exitErr(ExitUsage, fmt.Errorf("--online verifies with signerd's own key and records; it does not take --%s", f))
		}
	}
	digest, err := skill.ParseDigestConvention(opts.digest)
	if err != nil {
		return exitErr(ExitUsage, fmt.Errorf("--digest: %w (want any, sha256 or go)", err))
	}
	if err := skillDirArg(dir); err != nil {
		return err
	}
	sigPath := opts.signature
	if sigPath == "" {
		sigPath = filepath.Join(dir, skill.SignatureFilename)
	}
	out := &skillVerifyOutput{Dir: dir, KeySource: keySourceDaemon, domain: opts.domain}
	res := &skill.Result{}
	out.Result = res
	doc, err := readSmallFile(sigPath, maxSkillSignatureSize)
	if err != nil {
		if _, statErr := os.Lstat(sigPath); opts.signature == "" && errors.Is(statErr, fs.ErrNotExist) {
			res.ErrorCode, res.ErrorMessage = skill.CodeSignatureInvalid, "no "+skill.SignatureFilename+" in "+dir
			out.Reason = string(errdefs.ReasonSignatureNotFound)
			return reportOnline(g, out, &errdefs.VerificationError{Reason: errdefs.ReasonSignatureNotFound, Message: res.ErrorMessage})
		}
		return err
	}
	// Canonicalizing is local work, not bounded by --timeout (how long
	// to wait for the daemon).
	m, err := skill.Canonicalize(cmd.Context(), dir)
	if err != nil {
		return exitErr(localExit(err), err)
	}
	ctx, cancel := g.ctx(cmd.Context())
	defer cancel()
	out.SkillHash = m.SkillHash()
	req := &signerv1.VerifySkillRequest{Domain: opts.domain, Root: m.Root[:], FileManifest: m.Files, SignatureDocument: onlineDocument(doc)}
	switch digest {
	case skill.DigestSHA256:
		req.DigestConvention = signerv1.DigestConvention_DIGEST_CONVENTION_SHA256
	case skill.DigestGo:
		req.DigestConvention = signerv1.DigestConvention_DIGEST_CONVENTION_GO
	}
	c, err := g.dial()
	if err != nil {
		return err
	}
	defer c.Close()
	resp, err := verifySkill(ctx, c.Skills, req)
	if err != nil {
		err = c.FromStatus(err)
		v, ok := errdefs.AsVerification(err)
		if !ok {
			return err
		}
		// The daemon's message is the offline Result's "code: message";
		// split the same way, both modes print and report alike.
		res.ErrorCode, res.ErrorMessage = skill.ErrorCode(v.Code), strings.TrimPrefix(v.Message, v.Code+": ")
		out.Reason, out.KeyFingerprint = string(v.Reason), v.Fingerprint
		if sig, err := skill.ParseSignature(doc); doc != nil && err == nil {
			// The document's domain claim, as offline verification
			// reports it on a failure too.
			res.Domain = sig.Domain
			if v.Reason == errdefs.ReasonPackageTampered {
				// Itemize the change locally against the document's
				// manifest, as signctl skill tampered would.
				rep := skill.DetectTamperedFiles(m.Files, sig.FileManifest)
				if !rep.Clean() {
					res.Tampered = &rep
				}
			}
		}
		return reportOnline(g, out, v)
	}
	res.Valid, res.Domain, res.Warnings, res.Expired, res.ExpiresAt = true, resp.GetDomain(), resp.GetWarnings(), resp.GetExpired(), resp.GetExpiresAt()
	res.SchemaVersion, res.PreviousHash = resp.GetSchemaVersion(), resp.GetPreviousHash()
	switch resp.GetDigestConvention() {
	case signerv1.DigestConvention_DIGEST_CONVENTION_SHA256:
		res.DigestConvention = skill.DigestSHA256
	case signerv1.DigestConvention_DIGEST_CONVENTION_GO:
		res.DigestConvention = skill.DigestGo
	}
	out.KeyFingerprint = resp.GetKeyFingerprint()
	res.PathOrder = skill.PathOrder(resp.GetPathOrder())
	if len(m.Unsigned) > 0 { // the daemon sees the manifest, not the folder
		res.Warnings = append(res.Warnings, skill.WarningUnsignedEntries)
		res.Unsigned = m.Unsigned
	}
	return reportOnline(g, out, nil)
}

func reportOnline(g *globals, out *skillVerifyOutput, verr *errdefs.VerificationError) error {
	if g.json() {
		if err := printJSON(g.stdout, out); err != nil {
			return err
		}
	} else if verr == nil {
		printf(g.stdout, "OK: %s verified by signerd: signed for %s by %s (%s digest convention), metadata as signed\n",
			out.Dir, out.domain, out.KeyFingerprint, out.Result.DigestConvention)
		printPathOrder(g.stdout, out.Result)
		printSkillWarnings(g.stdout, out)
	} else {
		printSkillVerifyFailed(g.stderr, out)
	}
	switch {
	case verr == nil:
		return nil
	case verr.Reason == errdefs.ReasonMalformedSignature:
		return &exitError{code: ExitUsage, err: verr, reported: true}
	default:
		return &exitError{code: ExitVerifyFail, err: verr, reported: true}
	}
}
