// Package pkgsig reads, writes and verifies Cloacina's detached package
// signatures (shared/specs/cloacina-upstream.md §2, §4, §5).
//
// A signature is plain Ed25519 (RFC 8032, not Ed25519ph) over the 32 raw
// SHA-256 bytes of the package file. The detached document is the JSON
// object serde_json::to_string_pretty writes for Cloacina's
// DetachedSignature: six fields in a fixed order, two-space indent, no
// trailing newline. Fingerprints are the lowercase hex SHA-256 of the raw
// 32-byte public key.
//
// The package is pure: no I/O beyond the readers it is handed, usable by the
// daemon and by offline signctl alike.
package pkgsig
