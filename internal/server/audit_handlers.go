package server

import (
	"context"
	"encoding/hex"
	"errors"

	signerv1 "github.com/signerd/signerd/gen/signer/v1"
	"github.com/signerd/signerd/internal/service"
	"github.com/signerd/signerd/internal/store"
)

// auditServer implements signerv1.AuditServiceServer over the service.
type auditServer struct {
	signerv1.UnimplementedAuditServiceServer
	svc *service.Service
}

// ListAudit implements signerv1.AuditServiceServer.
func (s *auditServer) ListAudit(ctx context.Context, req *signerv1.ListAuditRequest) (*signerv1.ListAuditResponse, error) {
	page, err := s.svc.ListAudit(ctx, req.GetSince(), int(min(req.GetLimit(), uint32(service.MaxAuditPage))))
	if err != nil {
		return nil, err
	}
	out := &signerv1.ListAuditResponse{HeadSeq: page.HeadSeq, Records: make([]*signerv1.AuditRecord, 0, len(page.Records))}
	for _, r := range page.Records {
		out.Records = append(out.Records, &signerv1.AuditRecord{
			Seq: r.Seq, PrevHash: r.PrevHash, Hash: r.Hash, Time: timeToPB(r.Time), Caller: r.Caller,
			Operation: r.Operation, Key: r.Key, Org: r.Org, Digest: r.Digest, Outcome: r.Outcome, Detail: r.Detail,
		})
	}
	return out, nil
}

// VerifyAudit implements signerv1.AuditServiceServer. A damaged log is a
// verdict (intact false), not an error status; other errors (the database
// unreadable, the audit key not loaded) are.
func (s *auditServer) VerifyAudit(ctx context.Context, _ *signerv1.VerifyAuditRequest) (*signerv1.VerifyAuditResponse, error) {
	rep, err := s.svc.VerifyAudit(ctx)
	var ce *store.ChainError
	if err != nil && !errors.As(err, &ce) {
		return nil, err
	}
	_, ver, kerr := s.svc.AuditPublicKey(ctx)
	if kerr != nil {
		return nil, kerr
	}
	out := &signerv1.VerifyAuditResponse{
		Intact:              ce == nil,
		HeadSeq:             rep.HeadSeq,
		HeadHash:            rep.HeadHash,
		CheckpointCount:     uint32(rep.Checkpoints),
		AuditKeyFingerprint: ver.Fingerprint,
	}
	if c := rep.Latest; c != nil {
		out.LatestCheckpoint = &signerv1.AuditCheckpoint{Seq: c.Seq, Hash: c.Hash, Time: timeToPB(c.Time), KeyFingerprint: c.KeyFingerprint, Signature: c.Signature, StateDigest: c.StateDigest}
	}
	if st := rep.State; st != nil {
		out.StateDigest, out.StateVouchedAt, out.StateChangesAfterCheckpoint = st.Digest, st.VouchedAt, uint32(st.ChangesAfter)
	}
	if ce != nil {
		out.Problem = &signerv1.AuditProblem{Seq: ce.Seq, Damage: damageToPB(ce.Kind), Kind: ce.Kind, Message: ce.Message}
	}
	return out, nil
}

// GetAuditPublicKey implements signerv1.AuditServiceServer.
func (s *auditServer) GetAuditPublicKey(ctx context.Context, _ *signerv1.GetAuditPublicKeyRequest) (*signerv1.GetAuditPublicKeyResponse, error) {
	k, ver, err := s.svc.AuditPublicKey(ctx)
	if err != nil {
		return nil, err
	}
	return &signerv1.GetAuditPublicKeyResponse{
		PublicKeyPem: service.PublicKeyPEM(ver.PublicKey),
		Fingerprint:  ver.Fingerprint,
		Algorithm:    algorithmToPB(k.Algorithm),
		CkaId:        hex.EncodeToString(ver.CKAID),
		CreatedAt:    timeToPB(ver.CreatedAt),
	}, nil
}

func damageToPB(kind string) signerv1.AuditDamage {
	switch kind {
	case store.ChainEdited:
		return signerv1.AuditDamage_AUDIT_DAMAGE_EDITED
	case store.ChainInserted:
		return signerv1.AuditDamage_AUDIT_DAMAGE_INSERTED
	case store.ChainDeleted:
		return signerv1.AuditDamage_AUDIT_DAMAGE_DELETED
	case store.ChainReordered:
		return signerv1.AuditDamage_AUDIT_DAMAGE_REORDERED
	case store.ChainBrokenLink:
		return signerv1.AuditDamage_AUDIT_DAMAGE_BROKEN_LINK
	case store.ChainBadCheckpoint:
		return signerv1.AuditDamage_AUDIT_DAMAGE_BAD_CHECKPOINT_SIGNATURE
	case store.ChainWrongCheckpointKey:
		return signerv1.AuditDamage_AUDIT_DAMAGE_WRONG_CHECKPOINT_KEY
	case store.ChainStateUnexplained:
		return signerv1.AuditDamage_AUDIT_DAMAGE_STATE_UNEXPLAINED
	}
	return signerv1.AuditDamage_AUDIT_DAMAGE_UNSPECIFIED
}
