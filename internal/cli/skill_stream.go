package cli

import (
	"context"
	"encoding/json"
	"slices"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	signerv1 "github.com/signerd/signerd/gen/signer/v1"
)

// manifestChunk bounds the manifest bytes of one SignSkillStream message,
// well under the daemon's 64 KiB per-message limit.
const manifestChunk = 48 << 10

// signSkill sends the request over SignSkillStream — the manifest in
// pieces, in byte order of path — so that a skill of any number of files
// fits the daemon's request limits; a daemon without that RPC gets the
// unary SignSkill, as before.
func signSkill(ctx context.Context, skills signerv1.SkillServiceClient, req *signerv1.SignSkillRequest) (*signerv1.SignSkillResponse, error) {
	stream, err := skills.SignSkillStream(ctx)
	if err != nil {
		return nil, err
	}
	header := &signerv1.SignSkillRequest{
		KeyName: req.KeyName, Root: req.Root, Domain: req.Domain, SkillName: req.SkillName, ExpiresIn: req.ExpiresIn,
		SchemaVersion: req.SchemaVersion, PreviousHash: req.PreviousHash, SignerKid: req.SignerKid, DigestConvention: req.DigestConvention,
	}
	// A failed Send means the daemon ended the call: CloseAndRecv then
	// returns its status.
	if stream.Send(&signerv1.SignSkillStreamRequest{Header: header}) == nil {
		sendManifest(req.FileManifest, func(entries []*signerv1.ManifestEntry) error {
			return stream.Send(&signerv1.SignSkillStreamRequest{Entries: entries})
		})
	}
	resp, err := stream.CloseAndRecv()
	if status.Code(err) == codes.Unimplemented {
		return skills.SignSkill(ctx, req)
	}
	if err != nil {
		return nil, err
	}
	return resp.GetResponse(), nil
}

// sendManifest sends the manifest's entries in byte order of path, in
// messages of at most manifestChunk bytes, until done or a send fails.
func sendManifest(manifest map[string]string, send func([]*signerv1.ManifestEntry) error) {
	paths := make([]string, 0, len(manifest))
	for p := range manifest {
		paths = append(paths, p)
	}
	slices.Sort(paths)
	var entries []*signerv1.ManifestEntry
	size := 0
	for _, p := range paths {
		n := len(p) + len(manifest[p]) + 8 // field tags and lengths
		if size+n > manifestChunk && len(entries) > 0 {
			if send(entries) != nil {
				return
			}
			entries, size = nil, 0
		}
		entries = append(entries, &signerv1.ManifestEntry{Path: p, Hash: manifest[p]})
		size += n
	}
	if len(entries) > 0 {
		_ = send(entries)
	}
}

// verifySkill sends the request over VerifySkillStream, the manifest in
// pieces, so that a skill of any number of files fits the daemon's request
// limits; a daemon without that RPC gets the unary VerifySkill.
func verifySkill(ctx context.Context, skills signerv1.SkillServiceClient, req *signerv1.VerifySkillRequest) (*signerv1.VerifySkillResponse, error) {
	stream, err := skills.VerifySkillStream(ctx)
	if err != nil {
		return nil, err
	}
	header := &signerv1.VerifySkillRequest{Domain: req.Domain, Root: req.Root, SignatureDocument: req.SignatureDocument, DigestConvention: req.DigestConvention}
	if stream.Send(&signerv1.VerifySkillStreamRequest{Header: header}) == nil {
		sendManifest(req.FileManifest, func(entries []*signerv1.ManifestEntry) error {
			return stream.Send(&signerv1.VerifySkillStreamRequest{Entries: entries})
		})
	}
	resp, err := stream.CloseAndRecv()
	if status.Code(err) == codes.Unimplemented {
		return skills.VerifySkill(ctx, req)
	}
	if err != nil {
		return nil, err
	}
	return resp.GetResponse(), nil
}

// maxOnlineDocument is the largest .schemapin.sig sent whole to the
// daemon's VerifySkill, under its 1 MiB request limit.
const maxOnlineDocument = 1<<20 - 8<<10

// onlineDocument is the document VerifySkill is sent. A skill of more than
// about 10,000 files has a .schemapin.sig larger than the daemon accepts
// in one request, its file_manifest being most of it; it is sent without
// the manifest, which the signature does not cover (the signature is over
// the root, which this client computed from the folder) and the daemon
// does not compare. The daemon then finds its record by signer_kid.
func onlineDocument(doc []byte) []byte {
	if len(doc) <= maxOnlineDocument {
		return doc
	}
	var fields map[string]json.RawMessage
	if json.Unmarshal(doc, &fields) != nil {
		return doc // malformed: the daemon says so
	}
	delete(fields, "file_manifest")
	out, err := json.Marshal(fields)
	if err != nil {
		return doc
	}
	return out
}
