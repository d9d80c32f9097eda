package server

import (
	"context"
	"errors"
	"io"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/status"

	signerv1 "github.com/signerd/signerd/gen/signer/v1"
	"github.com/signerd/signerd/internal/service"
)

// batchWindow is how many items of one SignBatch stream are in flight at
// once. Several in flight let the HSM pipeline and, above all, let the
// store's group commit put many signatures in one fsync; the window bounds
// memory per stream, and the service's HSM semaphore bounds HSM load across
// all callers.
const batchWindow = 64

// SignBatch implements signerv1.SignerServiceServer: items are signed
// concurrently (batchWindow queued behind the one being answered) and
// answered strictly in request order.
func (s *signerServer) SignBatch(stream signerv1.SignerService_SignBatchServer) error {
	ctx, cancel := context.WithCancel(stream.Context())
	defer cancel()
	id, _ := IdentityFrom(ctx)

	type item struct {
		done chan struct{}
		out  *signerv1.SignBatchResponse
	}
	pending := make(chan *item, batchWindow)
	recvErr := make(chan error, 1)
	workers := batchItems()
	go func() {
		defer close(pending)
		for {
			req, err := stream.Recv()
			if err != nil {
				if errors.Is(err, io.EOF) {
					err = nil
				}
				recvErr <- err
				return
			}
			it := &item{done: make(chan struct{})}
			select {
			case pending <- it:
			case <-ctx.Done():
				recvErr <- ctx.Err()
				return
			}
			r := req.GetRequest()
			workers.run(func() {
				defer close(it.done)
				it.out = s.signItem(ctx, id, r)
			})
		}
	}()
	for it := range pending {
		<-it.done
		if err := stream.Send(it.out); err != nil {
			return err // cancel() stops the reader; items in flight finish and stay recorded
		}
	}
	return <-recvErr
}

// signItem authorizes and signs one batch item, turning a failure into an
// item error with the code and reason the unary Sign would have returned.
func (s *signerServer) signItem(ctx context.Context, id Identity, r *signerv1.SignRequest) *signerv1.SignBatchResponse {
	if r == nil {
		r = &signerv1.SignRequest{}
	}
	var err error
	if s.authz != nil {
		if err = s.authz.Authorize(ctx, id, signerv1.SignerService_Sign_FullMethodName, r); err != nil && s.denials != nil {
			s.denials.RecordDenial(ctx, signerv1.SignerService_SignBatch_FullMethodName, err.Error())
		}
	}
	if err == nil {
		var out service.SignOutput
		out, err = s.svc.Sign(ctx, service.SignInput{KeyName: r.GetKeyName(), Digest: r.GetDigest(), ArtifactName: r.GetArtifactName()})
		if err == nil {
			return &signerv1.SignBatchResponse{Response: signResponse(out)}
		}
	}
	st := status.Convert(ToStatus(ctx, s.log, err))
	item := &signerv1.BatchItemError{Code: int32(st.Code()), Message: st.Message()}
	for _, d := range st.Details() {
		if info, ok := d.(*errdetails.ErrorInfo); ok {
			item.Reason = info.GetReason()
		}
	}
	return &signerv1.SignBatchResponse{Error: item}
}
