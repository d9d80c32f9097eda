package server

import (
	"context"

	signerv1 "github.com/signerd/signerd/gen/signer/v1"
	"github.com/signerd/signerd/internal/service"
	"github.com/signerd/signerd/internal/store"
)

func revocationFromPB(r signerv1.RevocationReason) store.RevocationReason {
	switch r {
	case signerv1.RevocationReason_REVOCATION_REASON_KEY_COMPROMISE:
		return store.ReasonKeyCompromise
	case signerv1.RevocationReason_REVOCATION_REASON_SUPERSEDED:
		return store.ReasonSuperseded
	case signerv1.RevocationReason_REVOCATION_REASON_CESSATION_OF_OPERATION:
		return store.ReasonCessationOfOperation
	case signerv1.RevocationReason_REVOCATION_REASON_PRIVILEGE_WITHDRAWN:
		return store.ReasonPrivilegeWithdrawn
	}
	return ""
}

// RotateKey implements signerv1.KeyServiceServer.
func (s *keyServer) RotateKey(ctx context.Context, req *signerv1.RotateKeyRequest) (*signerv1.RotateKeyResponse, error) {
	out, err := s.svc.RotateKey(ctx, req.GetName())
	if err != nil {
		return nil, err
	}
	return &signerv1.RotateKeyResponse{Key: keyToPB(out.Key), TrustPropagatedTo: out.TrustPropagated}, nil
}

// RevokeKey implements signerv1.KeyServiceServer.
func (s *keyServer) RevokeKey(ctx context.Context, req *signerv1.RevokeKeyRequest) (*signerv1.RevokeKeyResponse, error) {
	out, err := s.svc.RevokeKey(ctx, req.GetName(), revocationFromPB(req.GetReason()))
	if err != nil {
		return nil, err
	}
	resp := &signerv1.RevokeKeyResponse{Key: keyToPB(out.Key)}
	if out.EscalatedFrom != "" {
		resp.EscalatedFrom = revocationToPB(out.EscalatedFrom)
	}
	return resp, nil
}

// ImportKey implements signerv1.KeyServiceServer. The request's key
// material is zeroed once the HSM holds it.
func (s *keyServer) ImportKey(ctx context.Context, req *signerv1.ImportKeyRequest) (*signerv1.ImportKeyResponse, error) {
	material := req.GetPrivateKey()
	defer clear(material)
	k, err := s.svc.ImportKey(ctx, service.ImportKeyInput{
		Name: req.GetName(), Algorithm: algorithmFromPB(req.GetAlgorithm()), Org: req.GetOrg(), Material: material,
	})
	if err != nil {
		return nil, err
	}
	return &signerv1.ImportKeyResponse{Key: keyToPB(k)}, nil
}
