// Package skill implements SchemaPin skill-folder signing (the
// .schemapin.sig format, v1.3 and v1.4) as a pure library: no network, no
// gRPC, no HSM. The daemon and the offline `signctl skill …` commands share
// it. The format is specified in shared/specs/schemapin-upstream.md; the
// § numbers in this package's comments refer to that document, and the
// choices where upstream SDKs disagree are those of DESIGN.md, "Format
// decisions".
//
// The pieces, in the order a signature is made and checked:
//
//   - Canonicalize (canonicalize.go) turns a folder into a Manifest: the
//     root hash, the only thing a signature covers, and the per-file
//     manifest (§3). Files are hashed in parallel and streamed.
//   - SigningDigest (signature.go) gives the 32 bytes the HSM signs: by
//     default SHA-256(root) as Python, JS and Rust do, or the root itself
//     as the official Go SDK does (§4). BuildSignatureDocument turns the
//     HSM's DER signature into the document bytes (§5).
//   - VerifyOffline (verify.go) is upstream's 7-step verification (§6) with
//     safer defaults that reject no valid upstream signature: either digest
//     convention, domain binding, pinning only after success, fail-closed
//     revocation documents. Its Result marshals to upstream's result JSON.
//   - Discovery (§8), RevocationDocument (§9), PinStore (§10), DNSTXT (§7),
//     VerifyChain (§11.1), DetectTamperedFiles (§11.2) and ParseSkillName
//     (§11.3) read and write the surrounding documents.
//
// Errors for bad input wrap errdefs.ErrInvalidArgument; verification
// verdicts are Results, and Result.Err turns a failed one into an
// *errdefs.VerificationError.
package skill
