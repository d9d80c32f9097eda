package service

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"time"

	"github.com/signerd/signerd/internal/errdefs"
	"github.com/signerd/signerd/internal/keystore"
	"github.com/signerd/signerd/internal/skill"
	"github.com/signerd/signerd/internal/store"
)

// RotateOutput is a rotated key and the orgs whose trust followed it.
type RotateOutput struct {
	Key             store.Key
	TrustPropagated []string
}

// RotateKey generates a new version of a key in the HSM. The new version
// signs from now on; older versions stay active for verification. Every org
// that actively trusted the previous current version also trusts the new
// one, so rotation does not break verification for consumers (each such
// trust change is audited like any other; carryTrust says how racing
// rotations and trust additions still reach every org).
func (s *Service) RotateKey(ctx context.Context, name string) (RotateOutput, error) {
	key, err := s.GetKey(ctx, name)
	if err != nil {
		return RotateOutput{}, err
	}
	prev, ok := key.Current()
	if !ok {
		return RotateOutput{}, errdefs.WithReason(errdefs.ReasonKeyRevoked,
			fmt.Errorf("key %q is revoked; create a new key instead of rotating it: %w", name, errdefs.ErrFailedPrecondition))
	}
	next := key.Versions[len(key.Versions)-1].Version + 1
	v, err := s.newVersion(ctx, name, next, keystore.Algorithm(key.Algorithm))
	if err != nil {
		return RotateOutput{}, err
	}
	ev := s.event(ctx, "key.rotate")
	ev.Key, ev.Org, ev.Detail = name, key.Org, fmt.Sprintf("version=%d fingerprint=%s previous=%s", next, v.Fingerprint, prev.Fingerprint)
	if err := s.store.AddKeyVersion(ctx, name, v, ev); err != nil {
		s.log.WarnContext(ctx, "key pair created in the HSM but not recorded; it is unused", "key", name, "version", next, "err", err)
		return RotateOutput{}, err
	}
	// The version is committed: its trust is carried whatever the caller
	// does now, for as long as it makes progress (carrier).
	c := s.newCarrier(ctx)
	out := RotateOutput{}
	lctx, cancel := c.op()
	orgs, err := s.store.ListOrgs(lctx)
	cancel()
	if err != nil {
		return out, fmt.Errorf("rotated to version %d, but the orgs to carry its trust to could not be read (signctl trust add --org ORG --key %s puts an org on it): %w", next, name, err)
	}
	var failed []error
	for _, o := range orgs {
		if !o.TrustsActively(prev.Fingerprint) {
			continue
		}
		if err := c.stalled(); err != nil {
			failed = append(failed, fmt.Errorf("org %q: %w", o.ID, err))
			continue
		}
		listed, err := s.carryOrg(c, o.ID, name, prev.Version, v.Fingerprint)
		if err != nil {
			// The other orgs are carried all the same.
			failed = append(failed, fmt.Errorf("org %q: %w", o.ID, err))
			continue
		}
		if listed {
			out.TrustPropagated = append(out.TrustPropagated, o.ID)
		}
	}
	if len(failed) > 0 {
		return out, fmt.Errorf("rotated to version %d, but its trust was not carried over for %d of the orgs trusting version %d (signctl trust add --org ORG --key %s puts an org on it): %w",
			next, len(failed), prev.Version, name, errors.Join(failed...))
	}
	kctx, cancel := c.op()
	defer cancel()
	out.Key, err = s.store.GetKey(kctx, name)
	return out, err
}

// carryOrg carries org's trust in version from of key name on to the
// versions since (carryTrust), each step with its own carryContext, and
// says whether org trusts the version fp now: a carry that did nothing
// (said there why) lists the org all the same if it does.
func (s *Service) carryOrg(c *carrier, org, name string, from uint32, fp string) (bool, error) {
	ctx, cancel := c.op()
	n, err := s.carryTrust(ctx, org, name, from)
	cancel()
	if err == nil || n > 0 {
		c.progressed()
	}
	if err != nil || n > 0 {
		return err == nil, err
	}
	ctx, cancel = c.op()
	defer cancel()
	now, err := s.store.GetOrg(ctx, org)
	return err == nil && now.TrustsActively(fp), nil
}

// carrier bounds a rotation's carrying of trust to every org that trusted
// the version it replaces. One deadline for them all would leave the orgs
// past it, however patient the caller, on the old version of a key
// trusted by a few thousand; none would let a store that has stopped
// answering hold the rotation for as many write timeouts as there are
// orgs. So the carrying goes on while it makes progress: each org's carry
// has carryTimeout, and once carryTimeout passes (on the service's clock)
// without one succeeding, the orgs left are reported not carried without
// being tried.
type carrier struct {
	ctx  context.Context
	now  func() time.Time
	last time.Time // of the last progress, or the start
}

func (s *Service) newCarrier(ctx context.Context) *carrier {
	return &carrier{ctx: ctx, now: s.now, last: s.now()}
}

// op is the context for one step of the carrying (carryContext).
func (c *carrier) op() (context.Context, context.CancelFunc) {
	return carryContext(c.ctx)
}

// progressed records that an org's carry succeeded, or carried some.
func (c *carrier) progressed() { c.last = c.now() }

// stalled is an error once carryTimeout has passed without progress.
func (c *carrier) stalled() error {
	if d := c.now().Sub(c.last); d >= carryTimeout {
		return fmt.Errorf("not tried: no org's trust was carried for %s: %w", d.Round(time.Second), errdefs.ErrUnavailable)
	}
	return nil
}

// carryTimeout bounds carrying trust after the change it follows has
// committed.
const carryTimeout = 30 * time.Second

// carryContext is the context for carrying trust once the change it
// follows (a rotation, a trust add) has committed: not canceled with the
// caller, whose client may give up (signctl's --timeout, Ctrl-C) between
// the two, which would leave the orgs not yet reached on the old version
// and the key's new signatures UNTRUSTED_SIGNER for them; bounded by
// carryTimeout instead. It keeps the caller's values (identity, for the
// audit).
func carryContext(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.WithoutCancel(ctx), carryTimeout)
}

// carryTrust makes org, which has come to trust version from of key name,
// trust each later version too, as a rotation does for the orgs trusting
// the version it replaces; it returns how many versions it carried. A
// rotation chooses those orgs from its own read of them, after its version
// committed; an org whose trust in the previous version commits after that
// read (a `trust add --key` that read the key before the rotation, or
// another rotation's carrying) would be left trusting only the old
// version, and the key's new signatures would fail UNTRUSTED_SIGNER for
// it. So every writer of such trust calls this after its own commit:
// whichever of the two commits second sees the other's. Each carry is
// decided in its commit (store.EditCarryTrust), so a decision taken since
// this read stands: an org whose trust in the earlier version was removed,
// an org whose entry for the later one an operator removed, a version
// revoked since. An org that already trusts the later version is carried
// on from it.
func (s *Service) carryTrust(ctx context.Context, org, name string, from uint32) (int, error) {
	carried := 0
	for ; ; from++ {
		key, err := s.store.GetKey(ctx, name)
		if err != nil {
			return carried, err
		}
		prev, ok1 := key.Version(from)
		next, ok2 := key.Version(from + 1)
		if !ok1 || !ok2 || next.State != store.KeyActive {
			return carried, nil
		}
		tk := store.TrustedKey{Fingerprint: next.Fingerprint, Algorithm: key.Algorithm, PublicKey: next.PublicKey, KeyName: name, TrustedAt: s.now()}
		ev := s.event(ctx, "trust.add")
		ev.Org, ev.Key, ev.Detail = org, name, fmt.Sprintf("fingerprint=%s (rotation of %s)", next.Fingerprint, prev.Fingerprint)
		switch err := s.store.CarryTrust(ctx, org, name, prev.Fingerprint, tk, ev); {
		case errors.Is(err, store.ErrNotCarried):
			// An org that trusts next all the same (added since,
			// by a writer that may not carry it on: a `trust add`
			// of an older version's public key) and still trusts
			// prev is carried on from it; otherwise the decision
			// that refused it stands (an org that trusts next alone
			// chose that version alone).
			o, err := s.store.GetOrg(ctx, org)
			if err != nil || !o.TrustsActively(prev.Fingerprint) || !o.TrustsActively(next.Fingerprint) {
				return carried, err
			}
		case err != nil:
			return carried, err
		default:
			carried++
		}
	}
}

// ParseRevocationReason validates one of SchemaPin's four reasons.
func ParseRevocationReason(r string) (store.RevocationReason, error) {
	switch rr := store.RevocationReason(r); rr {
	case store.ReasonKeyCompromise, store.ReasonSuperseded, store.ReasonCessationOfOperation, store.ReasonPrivilegeWithdrawn:
		return rr, nil
	}
	return "", fmt.Errorf("revocation reason %q: want key_compromise, superseded, cessation_of_operation or privilege_withdrawn: %w", r, errdefs.ErrInvalidArgument)
}

// RevokeKey revokes every active version of a key with a reason. It stops
// signing immediately: signing reads the key's state on every request.
//
// A key already revoked for another reason may be escalated to
// key_compromise (audited as key.revoke with escalated_from=, which the
// store adds in the commit: a revocation committing after this call read
// the key makes the call an escalation too): compromise
// voids every signature by the key, also those a routine revocation kept
// valid, so it must stay possible to say so later. Every other change of a
// revoked key's reason is refused (store.EditRevokeKey).
func (s *Service) RevokeKey(ctx context.Context, name string, reason store.RevocationReason) (RevokeOutput, error) {
	if _, err := ParseRevocationReason(string(reason)); err != nil {
		return RevokeOutput{}, err
	}
	key, err := s.GetKey(ctx, name)
	if err != nil {
		return RevokeOutput{}, err
	}
	ev := s.event(ctx, "key.revoke")
	ev.Key, ev.Org, ev.Detail = name, key.Org, "reason="+string(reason)
	prior := store.PriorRevocation(key)
	if prior != "" {
		if reason != store.ReasonKeyCompromise || prior == store.ReasonKeyCompromise {
			return RevokeOutput{}, revokedRefusal(name, prior, reason)
		}
	}
	from, err := s.store.RevokeKeyVersions(ctx, name, reason, s.now(), ev)
	if err != nil {
		if errors.Is(err, errdefs.ErrFailedPrecondition) {
			// Revoked meanwhile by another caller or replica.
			err = errdefs.WithReason(errdefs.ReasonKeyRevoked, err)
		}
		return RevokeOutput{}, err
	}
	if from != "" {
		// Decided in the commit: a revocation committing after the read
		// above makes this an escalation too.
		s.log.WarnContext(ctx, "key revocation escalated", "key", name, "reason", reason, "escalated_from", from)
	} else {
		s.log.WarnContext(ctx, "key revoked", "key", name, "reason", reason)
	}
	k, err := s.store.GetKey(ctx, name)
	return RevokeOutput{Key: k, EscalatedFrom: from}, err
}

// RevokeOutput is a revoked key and, when the revocation escalated an
// earlier one to key_compromise, that one's reason.
type RevokeOutput struct {
	Key           store.Key
	EscalatedFrom store.RevocationReason
}

// revokedRefusal is the error for revoking a revoked key other than by
// escalating it to key_compromise.
func revokedRefusal(name string, prior, reason store.RevocationReason) error {
	if reason == prior {
		return errdefs.WithReason(errdefs.ReasonKeyRevoked, fmt.Errorf("key %q is already revoked (%s): %w", name, prior, errdefs.ErrFailedPrecondition))
	}
	return errdefs.WithReason(errdefs.ReasonKeyRevoked, fmt.Errorf(
		"key %q is already revoked (%s); a revocation can only be escalated to %s, not changed to %s: %w",
		name, prior, store.ReasonKeyCompromise, reason, errdefs.ErrFailedPrecondition))
}

// ImportKeyInput carries existing private key material.
type ImportKeyInput struct {
	Name      string
	Algorithm keystore.Algorithm
	Org       string
	// Material is an Ed25519 raw 32-byte seed or PKCS#8 PEM, or an ECDSA
	// P-256 PKCS#8 or SEC1 PEM. The caller should zero it afterwards.
	Material []byte
}

// ImportKey creates an existing key pair inside the HSM (sensitive,
// non-extractable) as version 1 of a new named key. The material is parsed
// in memory and handed to the token; it is never logged or stored.
func (s *Service) ImportKey(ctx context.Context, in ImportKeyInput) (store.Key, error) {
	if err := ValidateKeyName(in.Name); err != nil {
		return store.Key{}, err
	}
	if in.Org != "" {
		if err := ValidateOrg(in.Org); err != nil {
			return store.Key{}, err
		}
	}
	priv, err := parsePrivateKey(in.Algorithm, in.Material)
	if err != nil {
		return store.Key{}, err
	}
	if _, err := s.store.GetKey(ctx, in.Name); err == nil {
		return store.Key{}, errdefs.WithReason(errdefs.ReasonKeyExists, fmt.Errorf("key %q already exists: %w", in.Name, errdefs.ErrAlreadyExists))
	} else if !errors.Is(err, errdefs.ErrNotFound) {
		return store.Key{}, err
	}
	pub := priv.(crypto.Signer).Public()
	fp, err := Fingerprint(pub)
	if err != nil {
		return store.Key{}, err
	}
	if k, _, err := s.store.FindKeyVersion(ctx, fp); err == nil {
		return store.Key{}, errdefs.WithReason(errdefs.ReasonKeyExists, fmt.Errorf("this key is already in signerd as %q: %w", k.Name, errdefs.ErrAlreadyExists))
	}
	id := make([]byte, 16)
	if _, err := rand.Read(id); err != nil {
		return store.Key{}, err
	}
	release, err := s.acquireHSM(ctx)
	if err != nil {
		return store.Key{}, err
	}
	got, err := s.keys.ImportKey(ctx, keystore.ImportKeyRequest{ID: id, Label: fmt.Sprintf("signerd/%s/v1", in.Name), Algorithm: in.Algorithm, Private: priv})
	release()
	if err != nil {
		return store.Key{}, fmt.Errorf("import key into the HSM: %w", err)
	}
	if gotFP, err := Fingerprint(got); err != nil || gotFP != fp {
		return store.Key{}, fmt.Errorf("the HSM reports a different public key after import: %w", errdefs.ErrInternal)
	}
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return store.Key{}, err
	}
	now := s.now()
	k := store.Key{Name: in.Name, Org: in.Org, Algorithm: string(in.Algorithm), CreatedAt: now, Versions: []store.KeyVersion{{
		Version: 1, CKAID: id, PublicKey: der, Fingerprint: fp, State: store.KeyActive, CreatedAt: now,
	}}}
	ev := s.event(ctx, "key.import")
	ev.Key, ev.Org, ev.Detail = in.Name, in.Org, fmt.Sprintf("algorithm=%s fingerprint=%s", in.Algorithm, fp)
	if err := s.store.CreateKey(ctx, k, ev); err != nil {
		return store.Key{}, err
	}
	return k, nil
}

// parsePrivateKey reads the key forms the two formats use in the wild.
func parsePrivateKey(alg keystore.Algorithm, material []byte) (crypto.PrivateKey, error) {
	bad := func(format string, args ...any) error {
		return fmt.Errorf(format+": %w", append(args, errdefs.ErrInvalidArgument)...)
	}
	switch alg {
	case keystore.Ed25519:
		if len(material) == ed25519.SeedSize && !bytes.HasPrefix(material, []byte("-----")) {
			return ed25519.NewKeyFromSeed(material), nil
		}
		block, _ := pem.Decode(material)
		if block == nil {
			return nil, bad("ed25519 private key: want the raw 32-byte seed (Cloacina) or a PKCS#8 PEM, got %d bytes", len(material))
		}
		if block.Type != "PRIVATE KEY" {
			return nil, bad("ed25519 private key: the file holds a %q PEM block; want a PKCS#8 \"PRIVATE KEY\" or the raw 32-byte seed", clipQuoted(block.Type))
		}
		k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
		if err != nil {
			return nil, bad("ed25519 private key: %v", err)
		}
		ek, ok := k.(ed25519.PrivateKey)
		if !ok {
			return nil, bad("private key is %T, not Ed25519", k)
		}
		return ek, nil
	case keystore.ECDSAP256:
		k, err := skill.ParsePrivateKeyPEM(material)
		if err != nil {
			return nil, bad("ecdsa-p256 %v", err) // "private key: …"

		}
		return (*ecdsa.PrivateKey)(k), nil
	}
	return nil, bad("algorithm %q: want ed25519 or ecdsa-p256", alg)
}
