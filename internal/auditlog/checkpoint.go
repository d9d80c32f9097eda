// Package auditlog signs and checks checkpoints of signerd's audit log and
// verifies the whole log against them. It is pure: it reads the log through
// a small interface (Log, which store.Store and *boltstore.Store satisfy),
// holds no key material and does no I/O of its own, so the daemon (online,
// with the audit key's public half from the HSM) and signctl (offline, on a
// read-only copy of the database and a PEM file) run the same code.
//
// The audit chain (store.HashAuditRecord) proves that records were not
// edited, inserted, removed or reordered relative to each other. It cannot
// prove that the tail was not cut off, or that the whole chain was not
// recomputed after an edit, by someone who can write the database: those
// need a statement the database writer cannot forge. A checkpoint is that
// statement: the audit key, which lives in the HSM, signs (seq, hash of
// record seq). A log is intact only if every checkpoint verifies with the
// audit key, every checkpoint's hash is the hash of the record at its seq,
// and no checkpoint lies beyond the log's end.
package auditlog

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/binary"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"time"

	"github.com/signerd/signerd/internal/errdefs"
	"github.com/signerd/signerd/internal/store"
)

// checkpointTag is the first field of the checkpoint encoding; a change of
// encoding is a new tag, never a reinterpretation of old signatures. v2 adds
// the state digest; checkpoints without one are v1, as they were signed.
const (
	checkpointTag   = "signerd-audit-checkpoint-v1"
	checkpointTagV2 = "signerd-audit-checkpoint-v2"
)

// CheckpointMessage returns the canonical encoding of c that the audit key
// signs. c.Signature is not part of it.
//
// The encoding (version 1) is the concatenation of
//
//	field("signerd-audit-checkpoint-v1")
//	uint64be(Seq)
//	field(Hash)
//	field(Time.UTC().Format(time.RFC3339Nano))
//	field(KeyFingerprint)
//
// with uint64be and field exactly as in store.HashAuditRecord (field(b) is
// uint32be(len(b)) ‖ b). A checkpoint with a state digest (every one
// signerd signs now) is version 2, the same with the tag
// "signerd-audit-checkpoint-v2" and field(StateDigest) appended: the state
// stays a separate, last field, so a later encoding can carry it over as is.
// Stripping the digest from a v2 checkpoint makes it a v1 message its
// signature does not match. The signature is ECDSA P-256 over
// SHA-256(message), ASN.1 DER, so it verifies with
//
//	openssl dgst -sha256 -verify audit.pub.pem -signature sig.der message.bin
//
// Example: Seq 7, Hash 32 bytes 0x11, Time 2025-01-02T03:04:05.000000006Z,
// KeyFingerprint "ab" has SHA-256(message)
// 345aac7d7d62ce33c0d1bef279fe63f2d9695b8591951536a6ad34e49bbd3c97
// (TestCheckpointMessageKnownAnswer pins the value, computed with Python's
// hashlib).
func CheckpointMessage(c store.Checkpoint) []byte {
	var b []byte
	field := func(f []byte) {
		b = binary.BigEndian.AppendUint32(b, uint32(len(f)))
		b = append(b, f...)
	}
	tag := checkpointTag
	if len(c.StateDigest) > 0 {
		tag = checkpointTagV2
	}
	field([]byte(tag))
	b = binary.BigEndian.AppendUint64(b, c.Seq)
	field(c.Hash)
	field([]byte(c.Time.UTC().Format(time.RFC3339Nano)))
	field([]byte(c.KeyFingerprint))
	if len(c.StateDigest) > 0 {
		field(c.StateDigest)
	}
	return b
}

// CheckpointDigest is SHA-256(CheckpointMessage(c)): what a crypto.Signer
// for the audit key signs, with crypto.SHA256 as its options.
func CheckpointDigest(c store.Checkpoint) []byte {
	sum := sha256.Sum256(CheckpointMessage(c))
	return sum[:]
}

// SignCheckpoint signs c with signer, which must hold an ECDSA P-256 key
// (the HSM's audit key), and returns c with its Signature set. It verifies
// the signature before returning, so a faulty token never produces a
// checkpoint that fails later.
func SignCheckpoint(signer crypto.Signer, c store.Checkpoint) (store.Checkpoint, error) {
	pub, ok := signer.Public().(*ecdsa.PublicKey)
	if !ok || pub.Curve != elliptic.P256() {
		return c, fmt.Errorf("audit key is %T, want ECDSA P-256: %w", signer.Public(), errdefs.ErrInternal)
	}
	sig, err := signer.Sign(rand.Reader, CheckpointDigest(c), crypto.SHA256)
	if err != nil {
		return c, fmt.Errorf("sign audit checkpoint: %w", err)
	}
	c.Signature = sig
	if !ecdsa.VerifyASN1(pub, CheckpointDigest(c), sig) {
		return c, fmt.Errorf("the audit key produced a checkpoint signature that does not verify: %w", errdefs.ErrInternal)
	}
	return c, nil
}

// VerifyCheckpoint checks c's fingerprint and signature against the audit
// key pub. It returns nil or a *store.ChainError of kind
// store.ChainWrongCheckpointKey or store.ChainBadCheckpoint naming c.Seq.
func VerifyCheckpoint(pub *ecdsa.PublicKey, c store.Checkpoint) error {
	fp := Fingerprint(pub)
	if c.KeyFingerprint != fp {
		return &store.ChainError{Seq: c.Seq, Kind: store.ChainWrongCheckpointKey,
			Message: fmt.Sprintf("the checkpoint of %s names audit key %s, not %s (is this the right audit public key? signctl audit public-key prints it)",
				c.Time.UTC().Format(time.RFC3339), short(c.KeyFingerprint), short(fp))}
	}
	if !ecdsa.VerifyASN1(pub, CheckpointDigest(c), c.Signature) {
		return &store.ChainError{Seq: c.Seq, Kind: store.ChainBadCheckpoint,
			Message: fmt.Sprintf("the checkpoint of %s does not verify with audit key %s: it was altered or forged",
				c.Time.UTC().Format(time.RFC3339), short(fp))}
	}
	return nil
}

// Fingerprint is the audit key's fingerprint: lowercase hex SHA-256 of its
// SPKI DER (signerd's ECDSA fingerprint, SchemaPin's without "sha256:").
func Fingerprint(pub *ecdsa.PublicKey) string {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return ""
	}
	sum := sha256.Sum256(der)
	return hex.EncodeToString(sum[:])
}

// ParsePublicKeyPEM reads an audit public key: an SPKI PEM holding an ECDSA
// P-256 key, as `signctl audit public-key` prints it.
func ParsePublicKeyPEM(data []byte) (*ecdsa.PublicKey, error) {
	block, _ := pem.Decode(data)
	if block == nil || block.Type != "PUBLIC KEY" {
		return nil, fmt.Errorf("not an SPKI public key PEM (want -----BEGIN PUBLIC KEY-----, as signctl audit public-key prints): %w", errdefs.ErrInvalidArgument)
	}
	pub, err := x509.ParsePKIXPublicKey(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("parse audit public key: %v: %w", err, errdefs.ErrInvalidArgument)
	}
	ec, ok := pub.(*ecdsa.PublicKey)
	if !ok || ec.Curve != elliptic.P256() {
		return nil, fmt.Errorf("the audit key is ECDSA P-256; this PEM holds a %T: %w", pub, errdefs.ErrInvalidArgument)
	}
	return ec, nil
}

// short abbreviates a fingerprint for messages.
func short(fp string) string {
	if len(fp) <= 16 {
		return fp
	}
	return fp[:8] + "…" + fp[len(fp)-4:]
}
