package server

import (
	"context"
	"strings"

	signerv1 "github.com/signerd/signerd/gen/signer/v1"
	"github.com/signerd/signerd/internal/service"
)

// logServer implements signerv1.LogServiceServer over the service.
type logServer struct {
	signerv1.UnimplementedLogServiceServer
	svc *service.Service
}

// GetCheckpoint implements signerv1.LogServiceServer.
func (s *logServer) GetCheckpoint(ctx context.Context, req *signerv1.GetCheckpointRequest) (*signerv1.GetCheckpointResponse, error) {
	cp, err := s.svc.LogCheckpointAtLeast(ctx, req.GetMinTreeSize())
	if err != nil {
		return nil, err
	}
	return &signerv1.GetCheckpointResponse{Checkpoint: cp.Note, Origin: cp.Origin, TreeSize: cp.Size, RootHash: cp.Root}, nil
}

// GetLogPublicKey implements signerv1.LogServiceServer.
func (s *logServer) GetLogPublicKey(ctx context.Context, _ *signerv1.GetLogPublicKeyRequest) (*signerv1.GetLogPublicKeyResponse, error) {
	vkey, err := s.svc.LogVerifierKey(ctx)
	if err != nil {
		return nil, err
	}
	// The key's name is the log's origin (--log-origin names both).
	origin, _, _ := strings.Cut(vkey, "+")
	return &signerv1.GetLogPublicKeyResponse{VerifierKey: vkey, Origin: origin}, nil
}

// GetSignatureProof implements signerv1.LogServiceServer.
func (s *logServer) GetSignatureProof(ctx context.Context, req *signerv1.GetSignatureProofRequest) (*signerv1.GetSignatureProofResponse, error) {
	b, err := s.svc.LogSignatureProof(ctx, req.GetDigest(), req.GetSignature())
	if err != nil {
		return nil, err
	}
	return &signerv1.GetSignatureProofResponse{Bundle: bundleToPB(b)}, nil
}

// GetInclusionProof implements signerv1.LogServiceServer.
func (s *logServer) GetInclusionProof(ctx context.Context, req *signerv1.GetInclusionProofRequest) (*signerv1.GetInclusionProofResponse, error) {
	b, err := s.svc.LogInclusionProof(ctx, req.GetLeafIndex(), req.GetTreeSize())
	if err != nil {
		return nil, err
	}
	return &signerv1.GetInclusionProofResponse{Bundle: bundleToPB(b)}, nil
}

// GetConsistencyProof implements signerv1.LogServiceServer.
func (s *logServer) GetConsistencyProof(ctx context.Context, req *signerv1.GetConsistencyProofRequest) (*signerv1.GetConsistencyProofResponse, error) {
	p, err := s.svc.LogConsistencyProof(ctx, req.GetFirstSize(), req.GetSecondSize())
	if err != nil {
		return nil, err
	}
	return &signerv1.GetConsistencyProofResponse{Proof: p}, nil
}

// ListLeaves implements signerv1.LogServiceServer.
func (s *logServer) ListLeaves(ctx context.Context, req *signerv1.ListLeavesRequest) (*signerv1.ListLeavesResponse, error) {
	leaves, size, err := s.svc.LogLeaves(ctx, req.GetStart(), int(min(req.GetLimit(), uint32(service.MaxLogLeavesPage))))
	if err != nil {
		return nil, err
	}
	return &signerv1.ListLeavesResponse{Leaves: leaves, TreeSize: size}, nil
}

func bundleToPB(b service.LogBundle) *signerv1.LogProofBundle {
	return &signerv1.LogProofBundle{Origin: b.Origin, Leaf: b.Leaf, LeafIndex: b.LeafIndex, TreeSize: b.TreeSize,
		InclusionProof: b.InclusionProof, Checkpoint: b.Checkpoint}
}
