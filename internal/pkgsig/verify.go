package pkgsig

import (
	"crypto/ed25519"
	"encoding/hex"
	"path/filepath"
	"strings"

	"github.com/signerd/signerd/internal/errdefs"
)

// Check verifies sig against the digest of the file as read and one public
// key, in Cloacina's order: the hash must match (else PACKAGE_TAMPERED), the
// key's fingerprint must be the signer's (else UNTRUSTED_SIGNER), and the
// Ed25519 signature must verify (else INVALID_SIGNATURE). Trust and
// revocation decisions belong to the caller; this is the cryptographic core
// shared by offline and online verification.
func Check(digest [DigestSize]byte, sig Signature, pub ed25519.PublicKey) error {
	if sig.Digest != digest {
		return tampered(digest, sig)
	}
	if fp := Fingerprint(pub); fp != sig.Fingerprint {
		return &errdefs.VerificationError{
			Reason:      errdefs.ReasonUntrustedSigner,
			Message:     "package signed by untrusted key " + sig.Fingerprint + " (trusted key is " + fp + ")",
			PackageHash: hex.EncodeToString(digest[:]),
			Fingerprint: sig.Fingerprint,
		}
	}
	return CheckSignature(digest, sig, pub)
}

// CheckSignature checks only the Ed25519 signature over the 32 raw digest
// bytes: plain RFC 8032 verification (crypto/ed25519), which accepts what
// Cloacina's ed25519-dalek signs.
func CheckSignature(digest [DigestSize]byte, sig Signature, pub ed25519.PublicKey) error {
	if len(pub) != ed25519.PublicKeySize || !ed25519.Verify(pub, digest[:], sig.Sig) {
		return &errdefs.VerificationError{
			Reason:      errdefs.ReasonInvalidSignature,
			Message:     "invalid signature: cryptographic verification failed for key " + sig.Fingerprint,
			PackageHash: hex.EncodeToString(digest[:]),
			Fingerprint: sig.Fingerprint,
		}
	}
	return nil
}

// tampered is the refusal for a signature made over another digest.
func tampered(digest [DigestSize]byte, sig Signature) error {
	return &errdefs.VerificationError{
		Reason: errdefs.ReasonPackageTampered,
		Message: "package has been tampered with: hash mismatch (expected " +
			hex.EncodeToString(sig.Digest[:]) + ", got " + hex.EncodeToString(digest[:]) + ")",
		PackageHash: hex.EncodeToString(digest[:]),
		Fingerprint: sig.Fingerprint,
	}
}

// SidecarPath is where the detached signature of path lives: "<path>.sig".
func SidecarPath(path string) string { return path + ".sig" }

// SidecarPaths are where a verifier looks for the detached signature of
// path, in order: SidecarPath, then, for a file name without an extension
// ("pkg", ".hidden"), Cloacina's own name for it, "<path>..sig": Cloacina
// builds the name with Rust's with_extension("{ext}.sig"), which for no
// extension adds ".sig" after a dot of its own.
func SidecarPaths(path string) []string {
	paths := []string{SidecarPath(path)}
	if name := filepath.Base(path); strings.LastIndexByte(name, '.') <= 0 && name != "." && name != ".." {
		paths = append(paths, path+"..sig")
	}
	return paths
}
