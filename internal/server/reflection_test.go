package server

import (
	"context"
	"errors"
	"testing"

	reflectionv1 "google.golang.org/grpc/reflection/grpc_reflection_v1"
	reflectionv1alpha "google.golang.org/grpc/reflection/grpc_reflection_v1alpha"

	"github.com/signerd/signerd/internal/errdefs"
)

// TestReflectionNeedsVerifier: reflection is a verifier's call, under the
// default rule and under a policy file; a peer no rule matches is denied.
func TestReflectionNeedsVerifier(t *testing.T) {
	policy, err := ParsePolicy([]byte(`{"version": 1, "rules": [{"uids": [1000], "role": "verifier"}]}`))
	if err != nil {
		t.Fatal(err)
	}
	verifier := Identity{ID: "uid:1000", UID: 1000, Unix: true}
	stranger := Identity{ID: "uid:2000", UID: 2000, Unix: true}
	nobody := Identity{ID: "unknown"} // neither Unix, TLS nor loopback
	def := DefaultAuthorizer{AdminUID: 0}
	for _, method := range []string{
		reflectionv1.ServerReflection_ServerReflectionInfo_FullMethodName,
		reflectionv1alpha.ServerReflection_ServerReflectionInfo_FullMethodName,
	} {
		cases := []struct {
			name  string
			authz Authorizer
			id    Identity
			want  error
		}{
			{"default rule, socket peer", def, verifier, nil},
			{"default rule, no identity", def, nobody, errdefs.ErrPermissionDenied},
			{"policy, verifier rule", policy, verifier, nil},
			{"policy, no rule", policy, stranger, errdefs.ErrPermissionDenied},
		}
		for _, tc := range cases {
			t.Run(method+"/"+tc.name, func(t *testing.T) {
				err := tc.authz.Authorize(context.Background(), tc.id, method, nil)
				if !errors.Is(err, tc.want) || (tc.want == nil && err != nil) {
					t.Fatalf("Authorize = %v, want %v", err, tc.want)
				}
			})
		}
	}
}
