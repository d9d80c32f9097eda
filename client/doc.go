// Package client is the Go client of signerd for loaders and build farms:
// Dial, Sign and SignFile, SignBatch, Verify, and OpenVerified, the safe
// way to load an artifact. signctl is built on it; it is the one
// implementation of dialling signerd and asking it for a verdict.
//
// # Loading safely
//
// OpenVerified opens the file once, hashes that open descriptor, asks
// signerd whether the org may load it, and returns the same descriptor
// rewound, with /proc/self/fd/N, a path that names the descriptor rather
// than the file on disk. Load from that (read it, mmap it, or dlopen the
// path): a file renamed over the original after the check is never what
// gets loaded. Whoever may write to the file itself can still change it in
// place after the check, as with any loader; keep artifacts writable by
// their publisher only.
//
// # Errors
//
// Refusals are *VerificationError values matched with errors.Is against
// one sentinel per reason: ErrTampered, ErrUntrustedSigner, ErrKeyRevoked,
// ErrSignatureNotFound, ErrMalformedSignature, ErrInvalidSignature,
// ErrUnknownOrg. An unsigned artifact that the org's policy admits is not
// an error: its Verdict's Outcome is OutcomeUnsignedAdmitted, and a loader
// that wants only signed code checks Verdict.Verified. Everything else
// wraps one kind: ErrUnavailable (signerd is down or not where the client
// looked), ErrPermissionDenied (the socket may not be opened, or the policy
// forbids the call), ErrInvalidArgument, ErrNotRegularFile, ErrFileChanged,
// ErrNotFound or ErrInternal.
package client
