package server

import (
	"context"
	"log/slog"

	signerv1 "github.com/signerd/signerd/gen/signer/v1"
	"github.com/signerd/signerd/internal/service"
)

// signerServer implements signerv1.SignerServiceServer over the service.
// Handlers only convert; every decision lives in internal/service.
type signerServer struct {
	signerv1.UnimplementedSignerServiceServer
	svc *service.Service
	// authz and denials authorize each SignBatch item exactly as a unary
	// Sign call is authorized.
	authz   Authorizer
	denials DenialRecorder
	log     *slog.Logger
	// maxRecv is the server-wide request limit (reqlimits.go): each
	// SignBatch item is held to the unary Sign's share of it.
	maxRecv int
}

// Sign implements signerv1.SignerServiceServer.
func (s *signerServer) Sign(ctx context.Context, req *signerv1.SignRequest) (*signerv1.SignResponse, error) {
	out, err := s.svc.Sign(ctx, service.SignInput{KeyName: req.GetKeyName(), Digest: req.GetDigest(), ArtifactName: req.GetArtifactName()})
	if err != nil {
		return nil, err
	}
	return signResponse(out), nil
}

func signResponse(out service.SignOutput) *signerv1.SignResponse {
	r := out.Record
	return &signerv1.SignResponse{
		SignatureDocument: out.Document,
		KeyName:           r.KeyName,
		KeyVersion:        r.KeyVersion,
		Algorithm:         algorithmToPB(r.Algorithm),
		KeyFingerprint:    r.Fingerprint,
		Signature:         r.Signature,
		SignedAt:          timeToPB(r.SignedAt),
	}
}

// Verify implements signerv1.SignerServiceServer.
func (s *signerServer) Verify(ctx context.Context, req *signerv1.VerifyRequest) (*signerv1.VerifyResponse, error) {
	res, err := s.svc.Verify(ctx, service.VerifyInput{Org: req.GetOrg(), Digest: req.GetDigest(), Document: req.GetSignatureDocument()})
	if err != nil {
		return nil, err
	}
	out := &signerv1.VerifyResponse{
		PackageHash:       res.PackageHash,
		SignerFingerprint: res.Fingerprint,
		SignerKeyName:     res.KeyName,
		SignedAt:          timeToPB(res.SignedAt),
		SignatureSource:   res.Source,
	}
	switch res.Outcome {
	case service.OutcomeVerified:
		out.Outcome, out.Verified = signerv1.VerifyOutcome_VERIFY_OUTCOME_VERIFIED, true
	case service.OutcomeUnsignedAdmitted:
		out.Outcome = signerv1.VerifyOutcome_VERIFY_OUTCOME_UNSIGNED_ADMITTED
	}
	if req.GetIncludeLogProof() && res.Outcome == service.OutcomeVerified {
		// The verdict stands on its own; a signature verified but not
		// (yet) provably logged is an error here only because the caller
		// asked for the proof and must not mistake its absence for one.
		b, err := s.svc.LogSignatureProof(ctx, res.Digest, res.Signature)
		if err != nil {
			return nil, err
		}
		out.LogProof = bundleToPB(b)
	}
	return out, nil
}

// ListTrusted implements signerv1.SignerServiceServer.
func (s *signerServer) ListTrusted(ctx context.Context, req *signerv1.ListTrustedRequest) (*signerv1.ListTrustedResponse, error) {
	v, err := s.svc.ListTrusted(ctx, req.GetOrg())
	if err != nil {
		return nil, err
	}
	out := &signerv1.ListTrustedResponse{Org: v.Org, GrantedOrgs: v.GrantedOrgs, RequireSignatures: v.RequireSignatures}
	for _, k := range v.Keys {
		out.Keys = append(out.Keys, trustedToPB(k.TrustedKey, k.ViaOrg))
	}
	return out, nil
}

// keyServer implements signerv1.KeyServiceServer.
type keyServer struct {
	signerv1.UnimplementedKeyServiceServer
	svc *service.Service
}

// CreateKey implements signerv1.KeyServiceServer.
func (s *keyServer) CreateKey(ctx context.Context, req *signerv1.CreateKeyRequest) (*signerv1.CreateKeyResponse, error) {
	k, err := s.svc.CreateKey(ctx, service.CreateKeyInput{Name: req.GetName(), Algorithm: algorithmFromPB(req.GetAlgorithm()), Org: req.GetOrg()})
	if err != nil {
		return nil, err
	}
	return &signerv1.CreateKeyResponse{Key: keyToPB(k)}, nil
}

// ListKeys implements signerv1.KeyServiceServer.
func (s *keyServer) ListKeys(ctx context.Context, _ *signerv1.ListKeysRequest) (*signerv1.ListKeysResponse, error) {
	keys, err := s.svc.ListKeys(ctx)
	if err != nil {
		return nil, err
	}
	out := &signerv1.ListKeysResponse{}
	for _, k := range keys {
		out.Keys = append(out.Keys, keyToPB(k))
	}
	return out, nil
}

// GetKey implements signerv1.KeyServiceServer.
func (s *keyServer) GetKey(ctx context.Context, req *signerv1.GetKeyRequest) (*signerv1.GetKeyResponse, error) {
	k, err := s.svc.GetKey(ctx, req.GetName())
	if err != nil {
		return nil, err
	}
	return &signerv1.GetKeyResponse{Key: keyToPB(k)}, nil
}

// trustServer implements signerv1.TrustServiceServer.
type trustServer struct {
	signerv1.UnimplementedTrustServiceServer
	svc *service.Service
}

// AddTrust implements signerv1.TrustServiceServer.
func (s *trustServer) AddTrust(ctx context.Context, req *signerv1.AddTrustRequest) (*signerv1.AddTrustResponse, error) {
	tk, err := s.svc.AddTrust(ctx, service.AddTrustInput{
		Org: req.GetOrg(), KeyName: req.GetKeyName(), PublicKeyPEM: []byte(req.GetPublicKeyPem()), DisplayName: req.GetDisplayName(),
	})
	if err != nil {
		return nil, err
	}
	return &signerv1.AddTrustResponse{Key: trustedToPB(tk, "")}, nil
}

// RemoveTrust implements signerv1.TrustServiceServer.
func (s *trustServer) RemoveTrust(ctx context.Context, req *signerv1.RemoveTrustRequest) (*signerv1.RemoveTrustResponse, error) {
	via, err := s.svc.RemoveTrust(ctx, req.GetOrg(), req.GetFingerprint())
	if err != nil {
		return nil, err
	}
	return &signerv1.RemoveTrustResponse{StillTrustedViaGrants: via}, nil
}

// GrantTrust implements signerv1.TrustServiceServer.
func (s *trustServer) GrantTrust(ctx context.Context, req *signerv1.GrantTrustRequest) (*signerv1.GrantTrustResponse, error) {
	return &signerv1.GrantTrustResponse{}, s.svc.GrantTrust(ctx, req.GetParent(), req.GetChild())
}

// RevokeGrant implements signerv1.TrustServiceServer.
func (s *trustServer) RevokeGrant(ctx context.Context, req *signerv1.RevokeGrantRequest) (*signerv1.RevokeGrantResponse, error) {
	return &signerv1.RevokeGrantResponse{}, s.svc.RevokeGrant(ctx, req.GetParent(), req.GetChild())
}

// SetPolicy implements signerv1.TrustServiceServer.
func (s *trustServer) SetPolicy(ctx context.Context, req *signerv1.SetPolicyRequest) (*signerv1.SetPolicyResponse, error) {
	require := req.GetPolicy().GetRequireSignatures()
	if err := s.svc.SetRequireSignatures(ctx, req.GetOrg(), require); err != nil {
		return nil, err
	}
	return &signerv1.SetPolicyResponse{Policy: &signerv1.Policy{RequireSignatures: require}}, nil
}

// GetPolicy implements signerv1.TrustServiceServer.
func (s *trustServer) GetPolicy(ctx context.Context, req *signerv1.GetPolicyRequest) (*signerv1.GetPolicyResponse, error) {
	require, err := s.svc.RequireSignatures(ctx, req.GetOrg())
	if err != nil {
		return nil, err
	}
	return &signerv1.GetPolicyResponse{Policy: &signerv1.Policy{RequireSignatures: require}}, nil
}
