package server

import (
	// The google.rpc detail types (ErrorInfo above all) must be in the
	// global registry that reflection serves from, so that grpcurl can
	// decode a refusal's details and show its reason in clear. errors.go
	// uses errdetails too; this import states the need where it arises.
	_ "google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/reflection"
)

// registerReflection serves gRPC server reflection (Options.Reflection), so
// that grpcurl and other generic clients call signerd without its .proto
// files. It reveals the public API only (the services in proto/ and the
// types they and their error details use), never keys, trust or records;
// methodRoles gives it the verifier role, like health. Both versions are
// served: grpcurl asks for v1 and falls back to v1alpha.
func registerReflection(gs *grpc.Server) {
	reflection.Register(gs)
}
