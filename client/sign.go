package client

import (
	"context"
	"errors"
	"fmt"
	"io"
	"path/filepath"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	signerv1 "github.com/signerd/signerd/gen/signer/v1"
	"github.com/signerd/signerd/internal/errdefs"
	"github.com/signerd/signerd/internal/pkgsig"
)

// Sign asks signerd to sign the artifact whose SHA-256 is digest with the
// key keyName. artifactName is recorded in the audit log. The response's
// SignatureDocument is the detached .sig document, byte for byte.
func (c *Client) Sign(ctx context.Context, keyName string, digest [DigestSize]byte, artifactName string) (*signerv1.SignResponse, error) {
	if keyName == "" {
		return nil, fmt.Errorf("sign: no key name given: %w", errdefs.ErrInvalidArgument)
	}
	resp, err := c.Signer.Sign(ctx, &signerv1.SignRequest{KeyName: keyName, Digest: digest[:], ArtifactName: artifactName})
	if err != nil {
		return nil, c.FromStatus(err)
	}
	return resp, nil
}

// SignFile streams the regular file at path through SHA-256 and signs the
// digest with keyName, recording the file's base name. It does not write
// the .sig document; that is resp.SignatureDocument.
func (c *Client) SignFile(ctx context.Context, path, keyName string) (*signerv1.SignResponse, error) {
	digest, err := pkgsig.HashFile(ctx, path)
	if err != nil {
		return nil, err
	}
	return c.Sign(ctx, keyName, digest, filepath.Base(path))
}

// SignBatch signs many digests over one SignBatch stream (one unary Sign
// for a single request) and calls each(i, response, itemErr) in request
// order: itemErr is that item's refusal (the same error Sign would have
// returned), and a failed item does not stop the others. A non-nil error
// from each, or a transport failure, stops the batch and is returned.
func (c *Client) SignBatch(ctx context.Context, reqs []*signerv1.SignRequest, each func(i int, resp *signerv1.SignResponse, itemErr error) error) error {
	if len(reqs) == 1 {
		resp, err := c.Signer.Sign(ctx, reqs[0])
		if err != nil {
			return each(0, nil, c.FromStatus(err))
		}
		return each(0, resp, nil)
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stream, err := c.Signer.SignBatch(ctx)
	if err != nil {
		return c.FromStatus(err)
	}
	sendErr := make(chan error, 1)
	go func() {
		for _, r := range reqs {
			if err := stream.Send(&signerv1.SignBatchRequest{Request: r}); err != nil {
				sendErr <- err
				return
			}
		}
		sendErr <- stream.CloseSend()
	}()
	for i := range reqs {
		resp, err := stream.Recv()
		if err != nil {
			return c.FromStatus(err)
		}
		var itemErr error
		if e := resp.GetError(); e != nil {
			itemErr = c.FromStatus(batchItemStatus(e))
		}
		if err := each(i, resp.GetResponse(), itemErr); err != nil {
			return err
		}
	}
	if err := <-sendErr; err != nil && !errors.Is(err, io.EOF) {
		return c.FromStatus(err)
	}
	return nil
}

// batchItemStatus rebuilds the status a unary Sign would have returned.
func batchItemStatus(e *signerv1.BatchItemError) error {
	st := status.New(codes.Code(e.GetCode()), e.GetMessage())
	if e.GetReason() != "" {
		if withInfo, err := st.WithDetails(&errdetails.ErrorInfo{Reason: e.GetReason(), Domain: "signerd.dev"}); err == nil {
			st = withInfo
		}
	}
	return st.Err()
}
