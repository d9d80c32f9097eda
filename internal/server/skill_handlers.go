package server

import (
	"context"
	"strings"

	signerv1 "github.com/signerd/signerd/gen/signer/v1"
	"github.com/signerd/signerd/internal/service"
	"github.com/signerd/signerd/internal/skill"
)

// skillServer implements signerv1.SkillServiceServer.
type skillServer struct {
	signerv1.UnimplementedSkillServiceServer
	svc *service.Service
	// authz and denials authorize SignSkillStream's header, which the
	// interceptor cannot see; maxRecv is the server-wide request limit.
	authz   Authorizer
	denials DenialRecorder
	maxRecv int
}

func conventionFromPB(c signerv1.DigestConvention) skill.DigestConvention {
	switch c {
	case signerv1.DigestConvention_DIGEST_CONVENTION_SHA256:
		return skill.DigestSHA256
	case signerv1.DigestConvention_DIGEST_CONVENTION_GO:
		return skill.DigestGo
	}
	return ""
}

func conventionToPB(c skill.DigestConvention) signerv1.DigestConvention {
	switch c {
	case skill.DigestSHA256:
		return signerv1.DigestConvention_DIGEST_CONVENTION_SHA256
	case skill.DigestGo:
		return signerv1.DigestConvention_DIGEST_CONVENTION_GO
	}
	return signerv1.DigestConvention_DIGEST_CONVENTION_UNSPECIFIED
}

// SignSkill implements signerv1.SkillServiceServer.
func (s *skillServer) SignSkill(ctx context.Context, req *signerv1.SignSkillRequest) (*signerv1.SignSkillResponse, error) {
	return s.signSkill(ctx, req)
}

func (s *skillServer) signSkill(ctx context.Context, req *signerv1.SignSkillRequest) (*signerv1.SignSkillResponse, error) {
	in := service.SignSkillInput{
		KeyName: req.GetKeyName(), Root: req.GetRoot(), Manifest: req.GetFileManifest(), Domain: req.GetDomain(),
		SkillName: req.GetSkillName(), SignerKid: req.GetSignerKid(), Convention: conventionFromPB(req.GetDigestConvention()),
		Options: skill.SignOptions{SchemaVersion: req.GetSchemaVersion(), PreviousHash: req.GetPreviousHash()},
	}
	if req.GetExpiresIn() != nil {
		in.Options.ExpiresIn = req.GetExpiresIn().AsDuration()
	}
	out, err := s.svc.SignSkill(ctx, in)
	if err != nil {
		return nil, err
	}
	return &signerv1.SignSkillResponse{
		SignatureDocument: out.Document,
		KeyName:           out.Record.KeyName,
		KeyVersion:        out.Record.KeyVersion,
		KeyFingerprint:    service.SchemaPinFingerprint(out.Record.Fingerprint),
		DigestConvention:  conventionToPB(out.Convention),
	}, nil
}

// VerifySkill implements signerv1.SkillServiceServer.
func (s *skillServer) VerifySkill(ctx context.Context, req *signerv1.VerifySkillRequest) (*signerv1.VerifySkillResponse, error) {
	out, err := s.svc.VerifySkill(ctx, service.VerifySkillInput{
		Domain: req.GetDomain(), Root: req.GetRoot(), Files: req.GetFileManifest(), Document: req.GetSignatureDocument(),
		Convention: conventionFromPB(req.GetDigestConvention()),
	})
	if err != nil {
		return nil, err
	}
	r := out.Result
	return &signerv1.VerifySkillResponse{
		Valid: r.Valid, Domain: r.Domain, Warnings: r.Warnings, Expired: r.Expired, ExpiresAt: r.ExpiresAt,
		SchemaVersion: r.SchemaVersion, PreviousHash: r.PreviousHash, DigestConvention: conventionToPB(r.DigestConvention),
		KeyName: out.KeyName, KeyFingerprint: r.KeyFingerprint, PathOrder: string(r.PathOrder),
	}, nil
}

// GetDiscovery implements signerv1.SkillServiceServer.
func (s *skillServer) GetDiscovery(ctx context.Context, req *signerv1.GetDiscoveryRequest) (*signerv1.GetDiscoveryResponse, error) {
	doc, err := s.svc.Discovery(ctx, req.GetKeyName(), req.GetDeveloperName(), req.GetContact())
	if err != nil {
		return nil, err
	}
	return &signerv1.GetDiscoveryResponse{Document: doc}, nil
}

// GetRevocation implements signerv1.SkillServiceServer.
func (s *skillServer) GetRevocation(ctx context.Context, req *signerv1.GetRevocationRequest) (*signerv1.GetRevocationResponse, error) {
	doc, err := s.svc.Revocation(ctx, strings.TrimSpace(req.GetDomain()))
	if err != nil {
		return nil, err
	}
	return &signerv1.GetRevocationResponse{Document: doc}, nil
}

// GetDNSTXT implements signerv1.SkillServiceServer.
func (s *skillServer) GetDNSTXT(ctx context.Context, req *signerv1.GetDNSTXTRequest) (*signerv1.GetDNSTXTResponse, error) {
	v, err := s.svc.DNSTXT(ctx, req.GetKeyName())
	if err != nil {
		return nil, err
	}
	return &signerv1.GetDNSTXTResponse{Value: v}, nil
}
