package server

import (
	"context"
	"errors"
	"testing"

	signerv1 "github.com/signerd/signerd/gen/signer/v1"
	"github.com/signerd/signerd/internal/errdefs"
)

// TestLogMethodRoles pins who may read the log, and that every LogService
// method was decided (a method missing from methodRoles is denied to all).
func TestLogMethodRoles(t *testing.T) {
	want := map[string]Role{
		signerv1.LogService_GetCheckpoint_FullMethodName:       RoleVerifier,
		signerv1.LogService_GetLogPublicKey_FullMethodName:     RoleVerifier,
		signerv1.LogService_GetConsistencyProof_FullMethodName: RoleVerifier,
		signerv1.LogService_GetSignatureProof_FullMethodName:   RoleVerifier,
		signerv1.LogService_GetInclusionProof_FullMethodName:   RoleAdmin,
		signerv1.LogService_ListLeaves_FullMethodName:          RoleAdmin,
	}
	for _, m := range signerv1.LogService_ServiceDesc.Methods {
		name := "/" + signerv1.LogService_ServiceDesc.ServiceName + "/" + m.MethodName
		if _, ok := want[name]; !ok {
			t.Errorf("%s: no role decided in this test", name)
		}
	}
	a := DefaultAuthorizer{AdminUID: 1}
	verifier := Identity{ID: "uid:1000", Unix: true, UID: 1000}
	for method, role := range want {
		if got, ok := methodRoles[method]; !ok || got != role {
			t.Errorf("%s needs role %v (listed %v), want %v", method, got, ok, role)
		}
		err := a.Authorize(context.Background(), verifier, method, nil)
		if denied := errors.Is(err, errdefs.ErrPermissionDenied); denied != (role > RoleVerifier) {
			t.Errorf("a verifier calling %s: %v", method, err)
		}
		if err := a.Authorize(context.Background(), Identity{ID: "tcp:x"}, method, nil); !errors.Is(err, errdefs.ErrPermissionDenied) {
			t.Errorf("an unknown peer calling %s: %v", method, err)
		}
	}
}
