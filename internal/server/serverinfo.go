package server

import (
	"context"

	signerv1 "github.com/signerd/signerd/gen/signer/v1"
	"github.com/signerd/signerd/internal/version"
)

// GetServerInfo implements signerv1.SignerServiceServer: this build's
// identity, as `signerd --version` prints it.
func (s *signerServer) GetServerInfo(context.Context, *signerv1.GetServerInfoRequest) (*signerv1.GetServerInfoResponse, error) {
	v := version.Get()
	return &signerv1.GetServerInfoResponse{
		Module: v.Module, Version: v.Version, Revision: v.Revision, Modified: v.Modified,
		BuildTime: v.BuildTime, GoVersion: v.GoVersion,
	}, nil
}
