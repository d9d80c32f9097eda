package server

import (
	"context"
	"fmt"
	"os"

	signerv1 "github.com/signerd/signerd/gen/signer/v1"
	"github.com/signerd/signerd/internal/errdefs"
	"google.golang.org/grpc/health/grpc_health_v1"
	reflectionv1 "google.golang.org/grpc/reflection/grpc_reflection_v1"
	reflectionv1alpha "google.golang.org/grpc/reflection/grpc_reflection_v1alpha"
)

// Role is what a caller may do.
type Role int

// Roles, from least to most privileged.
const (
	RoleNone Role = iota
	// RoleVerifier may verify, list trusted keys and read public data.
	RoleVerifier
	// RoleSigner may also sign.
	RoleSigner
	// RoleAdmin may also manage keys, trust and policy.
	RoleAdmin
)

func (r Role) String() string {
	return [...]string{"none", "verifier", "signer", "admin"}[r]
}

// methodRoles is the role each RPC needs. A method missing here is denied:
// adding an RPC without deciding who may call it fails closed.
var methodRoles = map[string]Role{
	signerv1.SignerService_Verify_FullMethodName:      RoleVerifier,
	signerv1.SignerService_ListTrusted_FullMethodName: RoleVerifier,
	signerv1.KeyService_GetKey_FullMethodName:         RoleVerifier,
	signerv1.KeyService_ListKeys_FullMethodName:       RoleVerifier,
	signerv1.TrustService_GetPolicy_FullMethodName:    RoleVerifier,
	grpc_health_v1.Health_Check_FullMethodName:        RoleVerifier,
	grpc_health_v1.Health_Watch_FullMethodName:        RoleVerifier,
	grpc_health_v1.Health_List_FullMethodName:         RoleVerifier,
	// Server reflection shows only the public API (reflection.go): any
	// peer that may verify may ask what it can call; a policy file that
	// matches no rule to a caller denies it this too.
	reflectionv1.ServerReflection_ServerReflectionInfo_FullMethodName:      RoleVerifier,
	reflectionv1alpha.ServerReflection_ServerReflectionInfo_FullMethodName: RoleVerifier,

	// The least role there is: whoever may call at all may ask which build answers.
	signerv1.SignerService_GetServerInfo_FullMethodName: RoleVerifier,

	signerv1.SkillService_VerifySkill_FullMethodName:       RoleVerifier,
	signerv1.SkillService_VerifySkillStream_FullMethodName: RoleVerifier,
	signerv1.SkillService_GetDiscovery_FullMethodName:      RoleVerifier,
	signerv1.SkillService_GetRevocation_FullMethodName:     RoleVerifier,
	signerv1.SkillService_GetDNSTXT_FullMethodName:         RoleVerifier,

	signerv1.SignerService_Sign_FullMethodName:      RoleSigner,
	signerv1.SignerService_SignBatch_FullMethodName: RoleSigner,
	signerv1.SkillService_SignSkill_FullMethodName:  RoleSigner,
	// Authorized at role level by the interceptor, then its header as a
	// SignSkill request by the handler.
	signerv1.SkillService_SignSkillStream_FullMethodName: RoleSigner,

	signerv1.KeyService_CreateKey_FullMethodName:     RoleAdmin,
	signerv1.KeyService_RotateKey_FullMethodName:     RoleAdmin,
	signerv1.KeyService_RevokeKey_FullMethodName:     RoleAdmin,
	signerv1.KeyService_ImportKey_FullMethodName:     RoleAdmin,
	signerv1.TrustService_AddTrust_FullMethodName:    RoleAdmin,
	signerv1.TrustService_RemoveTrust_FullMethodName: RoleAdmin,
	signerv1.TrustService_GrantTrust_FullMethodName:  RoleAdmin,
	signerv1.TrustService_RevokeGrant_FullMethodName: RoleAdmin,
	signerv1.TrustService_SetPolicy_FullMethodName:   RoleAdmin,

	// The audit log names every caller and digest, and verifying it reads
	// the whole log: admins only. The audit public key is public.
	signerv1.AuditService_ListAudit_FullMethodName:         RoleAdmin,
	signerv1.AuditService_VerifyAudit_FullMethodName:       RoleAdmin,
	signerv1.AuditService_GetAuditPublicKey_FullMethodName: RoleVerifier,

	// The verifiable log. What verifiers, loaders and witnesses need
	// reveals only hashes, sizes and the log key, or the record of a
	// signature the caller already holds (it names digest and signature):
	// verifier. A leaf by index or a range of leaves is any audit record,
	// which names callers and digests: admin, as ListAudit.
	signerv1.LogService_GetCheckpoint_FullMethodName:       RoleVerifier,
	signerv1.LogService_GetLogPublicKey_FullMethodName:     RoleVerifier,
	signerv1.LogService_GetConsistencyProof_FullMethodName: RoleVerifier,
	signerv1.LogService_GetSignatureProof_FullMethodName:   RoleVerifier,
	signerv1.LogService_GetInclusionProof_FullMethodName:   RoleAdmin,
	signerv1.LogService_ListLeaves_FullMethodName:          RoleAdmin,
}

// Authorizer decides whether a caller may make a call.
type Authorizer interface {
	Authorize(ctx context.Context, id Identity, method string, req any) error
}

// DefaultAuthorizer applies the rule used when no policy file is given: the
// daemon's own uid and root are admins; any other peer that can reach the
// socket (its mode decides who can) may verify; nobody else may sign. On
// TCP, a client with a certificate from --client-ca, or any plaintext
// loopback peer (--insecure-loopback), may verify and no more.
type DefaultAuthorizer struct {
	// AdminUID is the daemon's own uid.
	AdminUID uint32
}

// NewDefaultAuthorizer returns the no-policy-file rule for this process.
func NewDefaultAuthorizer() DefaultAuthorizer {
	return DefaultAuthorizer{AdminUID: uint32(os.Geteuid())}
}

// RoleOf returns the caller's role under the default rule.
func (a DefaultAuthorizer) RoleOf(id Identity) Role {
	if id.Unix && (id.UID == 0 || id.UID == a.AdminUID) {
		return RoleAdmin
	}
	if id.Unix || id.TLS || id.Loopback {
		return RoleVerifier
	}
	return RoleNone
}

// Authorize implements Authorizer.
func (a DefaultAuthorizer) Authorize(_ context.Context, id Identity, method string, _ any) error {
	need, ok := methodRoles[method]
	if !ok {
		return errdefs.WithReason(errdefs.ReasonPermissionDenied,
			fmt.Errorf("%s: method %s is not allowed for anyone: %w", id.ID, method, errdefs.ErrPermissionDenied))
	}
	if have := a.RoleOf(id); have < need {
		return errdefs.WithReason(errdefs.ReasonPermissionDenied,
			fmt.Errorf("%s (role %s) may not call %s, which needs role %s: %w", id.ID, have, method, need, errdefs.ErrPermissionDenied))
	}
	return nil
}
