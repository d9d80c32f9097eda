package server

import (
	"context"
	"errors"
	"fmt"
	"io"

	"google.golang.org/protobuf/proto"

	signerv1 "github.com/signerd/signerd/gen/signer/v1"
	"github.com/signerd/signerd/internal/errdefs"
	"github.com/signerd/signerd/internal/skill"
)

// manifestEntryOverhead approximates what one manifest entry costs in the
// daemon beyond its bytes (map entry, string headers), for the peer's
// budget of request bytes in flight.
const manifestEntryOverhead = 64

// manifestMsg is one message of SignSkillStream or VerifySkillStream.
type manifestMsg interface {
	proto.Message
	GetEntries() []*signerv1.ManifestEntry
}

// recvManifest reads a skill stream: a header (header reports whether the
// message has one and takes it), then the manifest in pieces, each message
// within the small per-method limit, the entries in byte order of path (no
// duplicate can replace an earlier entry). What it keeps is charged to the
// peer's budget of request bytes in flight as it arrives.
func recvManifest(ctx context.Context, method string, maxRecv int, recv func() (manifestMsg, error), header func(manifestMsg) (bool, error)) (map[string]string, error) {
	files := map[string]string{}
	order := skill.NewRootBuilder()
	first := true
	for {
		msg, err := recv()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, err
		}
		if err := checkRequestSize(method, msg, maxRecv); err != nil {
			return nil, err
		}
		has, err := header(msg)
		if err != nil {
			return nil, err
		}
		if has != first || (first && len(msg.GetEntries()) != 0) {
			return nil, fmt.Errorf("%s: the first message, and only it, carries the header, without manifest entries: %w", method, errdefs.ErrInvalidArgument)
		}
		first = false
		kept := 0
		for _, e := range msg.GetEntries() {
			if err := order.Add(e.GetPath(), e.GetHash()); err != nil {
				return nil, err
			}
			files[e.GetPath()] = e.GetHash()
			kept += len(e.GetPath()) + len(e.GetHash()) + manifestEntryOverhead
		}
		if err := ChargeRequestBytes(ctx, kept); err != nil {
			return nil, err
		}
	}
	if first {
		return nil, fmt.Errorf("%s: no header: %w", method, errdefs.ErrInvalidArgument)
	}
	return files, nil
}

// SignSkillStream implements signerv1.SkillServiceServer: SignSkill with
// the manifest in pieces.
func (s *skillServer) SignSkillStream(stream signerv1.SkillService_SignSkillStreamServer) error {
	ctx := stream.Context()
	var req *signerv1.SignSkillRequest
	files, err := recvManifest(ctx, signerv1.SkillService_SignSkillStream_FullMethodName, s.maxRecv,
		func() (manifestMsg, error) { return stream.Recv() },
		func(m manifestMsg) (bool, error) {
			h := m.(*signerv1.SignSkillStreamRequest).GetHeader()
			if h == nil {
				return false, nil
			}
			if len(h.GetFileManifest()) != 0 {
				return true, fmt.Errorf("SignSkillStream: the header carries no manifest: %w", errdefs.ErrInvalidArgument)
			}
			req = h
			return true, s.authorizeHeader(ctx, h)
		})
	if err != nil {
		return err
	}
	// Authorized again now that the manifest is in: the header's check may
	// be as old as the stream, and a policy reload since (SIGHUP, removing
	// the caller, or its TLS client CA), or its certificate's expiry, must
	// stop the signature, as it stops each SignBatch item.
	if err := recheckPeer(ctx); err != nil {
		return err
	}
	if err := s.authorizeHeader(ctx, req); err != nil {
		return err
	}
	req.FileManifest = files
	resp, err := s.signSkill(ctx, req)
	if err != nil {
		return err
	}
	return stream.SendAndClose(&signerv1.SignSkillStreamResponse{Response: resp})
}

// VerifySkillStream implements signerv1.SkillServiceServer: VerifySkill
// with the manifest in pieces.
func (s *skillServer) VerifySkillStream(stream signerv1.SkillService_VerifySkillStreamServer) error {
	ctx := stream.Context()
	var req *signerv1.VerifySkillRequest
	files, err := recvManifest(ctx, signerv1.SkillService_VerifySkillStream_FullMethodName, s.maxRecv,
		func() (manifestMsg, error) { return stream.Recv() },
		func(m manifestMsg) (bool, error) {
			h := m.(*signerv1.VerifySkillStreamRequest).GetHeader()
			if h == nil {
				return false, nil
			}
			if len(h.GetFileManifest()) != 0 {
				return true, fmt.Errorf("VerifySkillStream: the header carries no manifest: %w", errdefs.ErrInvalidArgument)
			}
			req = h
			return true, nil
		})
	if err != nil {
		return err
	}
	req.FileManifest = files
	resp, err := s.VerifySkill(ctx, req)
	if err != nil {
		return err
	}
	return stream.SendAndClose(&signerv1.VerifySkillStreamResponse{Response: resp})
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
