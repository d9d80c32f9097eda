package cli

import (
	"errors"

	"golang.org/x/mod/sumdb/note"

	"github.com/signerd/signerd/internal/errdefs"
	"github.com/signerd/signerd/internal/logproof"
	"github.com/signerd/signerd/internal/pkgsig"
)

// logProofCheck is verify's --require-proof: a bundle and the key its
// checkpoint must be signed by, both read before anything is verified so
// that bad input is exit 2 whatever the signature's verdict.
type logProofCheck struct {
	path   string
	bundle []byte
	key    note.Verifier
}

func loadLogProofCheck(bundlePath, logKey string) (*logProofCheck, error) {
	v, _, err := readLogKey("log-key", logKey)
	if err != nil {
		return nil, err
	}
	data, err := readSmallFile(bundlePath, logproof.MaxBundleSize)
	if err != nil {
		return nil, err
	}
	return &logProofCheck{path: bundlePath, bundle: data, key: v}, nil
}

// check runs after the signature verified: the bundle proves that the log
// holds the record of this digest and this signature.
func (p *logProofCheck) check(res *verifyResult, digest [pkgsig.DigestSize]byte, doc []byte) error {
	fail := func(r errdefs.Reason, format string, args ...any) error {
		v := errdefs.Verification(r, "--require-proof "+p.path+": "+format, args...)
		v.PackageHash, v.Fingerprint = res.PackageHash, res.SignerFingerprint
		return v
	}
	if doc == nil {
		// Online with a signature signerd recorded: there are no signature
		// bytes here to match the leaf against.
		return fail(errdefs.ReasonSignatureNotFound, "needs the signature document (FILE.sig or --signature) to match the proven record against")
	}
	sig, err := pkgsig.Parse(doc)
	if err != nil {
		return err
	}
	b, err := logproof.ParseBundle(p.bundle)
	if err != nil {
		return fail(errdefs.ReasonMalformedProof, "%v", err)
	}
	rec, err := logproof.ParseLeaf(b.Leaf)
	if err != nil {
		return fail(errdefs.ReasonMalformedProof, "the leaf: %v", err)
	}
	if err := rec.MatchSignature(b.LeafIndex, digest[:], sig.Sig); err != nil {
		return fail(errdefs.ReasonLogLeafMismatch, "%v", err)
	}
	cp, err := b.Verify(p.key)
	switch {
	case errors.Is(err, logproof.ErrCheckpoint):
		return fail(errdefs.ReasonLogCheckpointInvalid, "%v", err)
	case err != nil:
		return fail(errdefs.ReasonLogProofInvalid, "%v", err)
	}
	idx := b.LeafIndex
	res.LogOrigin, res.LogLeafIndex, res.LogTreeSize = cp.Origin, &idx, cp.Size
	return nil
}
