package server

import (
	"context"
	"errors"
	"fmt"
	"io"

	signerv1 "github.com/signerd/signerd/gen/signer/v1"
	"github.com/signerd/signerd/internal/errdefs"
	"github.com/signerd/signerd/internal/skill"
)

// manifestEntryOverhead approximates what one manifest entry costs in the
// daemon beyond its bytes (map entry, string headers), for the peer's
// budget of request bytes in flight.
const manifestEntryOverhead = 64

// SignSkillStream implements signerv1.SkillServiceServer: a header, then
// the manifest in pieces, each message within the small per-method limit.
// The manifest must be whole in the daemon (the .schemapin.sig carries
// it), so what it keeps is charged to the peer's budget of request bytes
// in flight as it arrives; the entries must come in byte order of path
// (no duplicate can replace an earlier entry).
func (s *skillServer) SignSkillStream(stream signerv1.SkillService_SignSkillStreamServer) error {
	ctx := stream.Context()
	const method = signerv1.SkillService_SignSkillStream_FullMethodName
	var req *signerv1.SignSkillRequest
	order := skill.NewRootBuilder()
	for {
		msg, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return err
		}
		if err := checkRequestSize(method, msg, s.maxRecv); err != nil {
			return err
		}
		if req == nil {
			req = msg.GetHeader()
			if req == nil || len(req.GetFileManifest()) != 0 || len(msg.GetEntries()) != 0 {
				return fmt.Errorf("the first message of SignSkillStream carries the header, without manifest entries: %w", errdefs.ErrInvalidArgument)
			}
			if err := s.authorizeHeader(ctx, req); err != nil {
				return err
			}
			req.FileManifest = map[string]string{}
			continue
		}
		if msg.GetHeader() != nil {
			return fmt.Errorf("SignSkillStream: a second header: %w", errdefs.ErrInvalidArgument)
		}
		kept := 0
		for _, e := range msg.GetEntries() {
			if err := order.Add(e.GetPath(), e.GetHash()); err != nil {
				return err
			}
			req.FileManifest[e.GetPath()] = e.GetHash()
			kept += len(e.GetPath()) + len(e.GetHash()) + manifestEntryOverhead
		}
		if err := ChargeRequestBytes(ctx, kept); err != nil {
			return err
		}
	}
	if req == nil {
		return fmt.Errorf("SignSkillStream: no header: %w", errdefs.ErrInvalidArgument)
	}
	resp, err := s.signSkill(ctx, req)
	if err != nil {
		return err
	}
	return stream.SendAndClose(&signerv1.SignSkillStreamResponse{Response: resp})
}

// authorizeHeader applies the policy to the header as to a SignSkill
// request: its key and its domain.
func (s *skillServer) authorizeHeader(ctx context.Context, req *signerv1.SignSkillRequest) error {
	if s.authz == nil {
		return nil
	}
	id, _ := IdentityFrom(ctx)
	err := s.authz.Authorize(ctx, id, signerv1.SkillService_SignSkill_FullMethodName, req)
	if err != nil && s.denials != nil {
		s.denials.RecordDenial(ctx, signerv1.SkillService_SignSkillStream_FullMethodName, err.Error())
	}
	return err
}
